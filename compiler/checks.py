"""Static checks over a parsed file, before anything is evaluated: every name refers to
something, no name is defined twice, and every recursive rule has a path to a base case.
All problems in the file are collected and reported together."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from ..base.diagnostics import (
    E_DUPLICATE,
    E_NO_BASE_CASE,
    E_UNKNOWN_NAME,
    Diagnostic,
    Note,
    Span,
    did_you_mean,
)
from ..grammar import ast
from .ops import OPS
from .plugins import near_installed
from .values import Builtin, OpCtor, Rule, Value


class _Scope:
    """Names visible at a point: a frame over its parent, so entering a rule or a `let`
    costs its own names only (a 100,000-rule file is checked in linear time)."""

    def __init__(self, names: Iterable[str], parent: _Scope | None = None,
                 arities: dict[str, int] | None = None, callables: set[str] | None = None,
                 keywords: dict[str, set[str]] | None = None):
        self.names = set(names)
        self.parent = parent
        self.arities: dict[str, int] = arities if arities is not None else (
            parent.arities if parent is not None else {})
        """How many positional arguments each op and rule takes (for hints)."""
        self.keywords: dict[str, set[str]] = keywords if keywords is not None else (
            parent.keywords if parent is not None else {})
        """The keyword arguments each op and rule takes (for hints)."""
        self.callables: set[str] = callables if callables is not None else (
            parent.callables if parent is not None else set())
        """The ops, rules and built-in functions: never what a number or a list is (for
        hints)."""

    def __contains__(self, name: str) -> bool:
        scope: _Scope | None = self
        while scope is not None:
            if name in scope.names:
                return True
            scope = scope.parent
        return False

    def all(self) -> set[str]:
        """Every visible name (for did-you-mean hints, on the error path only)."""
        return self.names | (self.parent.all() if self.parent is not None else set())


def check_program(program: ast.Program, outer: Mapping[str, Value],
                  reserved: Iterable[str] = ()) -> list[Diagnostic]:
    """Diagnostics for one file; ``outer`` are names visible from imports, prelude, built-ins;
    ``reserved`` are the primitive ops and built-in functions, which no rule may redefine."""
    diags: list[Diagnostic] = []
    defined: dict[str, ast.Def | ast.Model] = {}
    primitives = set(reserved)
    for item in program.items:
        if isinstance(item, ast.Def | ast.Model):
            if item.name in defined:
                first = defined[item.name]
                diags.append(Diagnostic(E_DUPLICATE, f"`{item.name}` is defined twice",
                                        item.name_span,
                                        (Note("first defined here", first.name_span),)))
            else:
                defined[item.name] = item
            if isinstance(item, ast.Def) and item.name in primitives:
                diags.append(Diagnostic(
                    E_DUPLICATE, f"`{item.name}` is a built-in and cannot be redefined",
                    item.name_span, hint=f"give the rule its own name, e.g. `my_{item.name}`"))
            diags += _unique([p.name for p in item.params], [p.span for p in item.params],
                             "parameter")
    rule_names = {n for n, d in defined.items() if isinstance(d, ast.Def)}
    arities = {name: len(op.attrs) for name, op in OPS.items()}
    keywords = {name: {a.name for a in op.attrs} for name, op in OPS.items()}
    rules = [d for d in defined.values() if isinstance(d, ast.Def)]
    rules += [v.decl for n, v in outer.items() if isinstance(v, Rule) and n not in defined]
    arities.update((d.name, len(d.params)) for d in rules)
    keywords.update((d.name, {p.name for p in d.params}) for d in rules)
    callables = {n for n, v in outer.items() if isinstance(v, Rule | OpCtor | Builtin)}
    visible = _Scope(rule_names, _Scope(outer, arities=arities, keywords=keywords,
                                        callables=callables | rule_names))
    for item in program.items:
        if isinstance(item, ast.Def | ast.Model):
            scope = _Scope((p.name for p in item.params), visible)
            for p in item.params:
                if p.default is not None:
                    diags += _names(p.default, scope)
            diags += _names(item.body, scope)
            if isinstance(item, ast.Model):
                for inp in item.inputs:
                    for a in inp.type.args:
                        diags += _names(a, scope, number=True)
                named = [i for i in item.inputs if i.name is not None]
                diags += _unique([i.name for i in named if i.name is not None],
                                 [i.span for i in named], "input")
        if isinstance(item, ast.Def):
            diags += _base_case(item)
    return diags


def names_used(program: ast.Program) -> dict[str, Span]:
    """The names the file's rules and models refer to and never bind (as a parameter, a
    `let`, a stream or a loop variable), each with its first use: the candidates for an
    installed plugin's op."""
    found: dict[str, Span] = {}
    bound: set[str] = set()
    todo: list[ast.Expr] = []
    for item in program.items:
        if isinstance(item, ast.Def | ast.Model):
            bound.update(p.name for p in item.params)
            todo += [p.default for p in item.params if p.default is not None]
            todo.append(item.body)
            if isinstance(item, ast.Model):
                todo += [a for i in item.inputs for a in i.type.args]
    while todo:
        expr = todo.pop()
        if isinstance(expr, ast.Name):
            found.setdefault(expr.id, expr.span)
            continue
        if isinstance(expr, ast.Let):
            bound.update(expr.targets)
        elif isinstance(expr, ast.Lambda):
            bound.update(expr.params)
        elif isinstance(expr, ast.ListComp):
            bound.update(t for c in expr.clauses for t in c.targets)
        todo += _children(expr)
    return {n: span for n, span in found.items() if n not in bound}


def _unique(names: Sequence[str], spans: Sequence[Span], what: str) -> list[Diagnostic]:
    seen: dict[str, Span] = {}
    out: list[Diagnostic] = []
    for name, span in zip(names, spans, strict=True):
        if name in seen:
            out.append(Diagnostic(E_DUPLICATE, f"{what} `{name}` is given twice", span,
                                  (Note("first given here", seen[name]),)))
        else:
            seen[name] = span
    return out


def _names(expr: ast.Expr, scope: _Scope, number: bool = False) -> list[Diagnostic]:
    """Diagnostics for the unknown and twice-bound names in ``expr``. A near name is
    suggested only where it could fit: for a call, among the names that take as many
    arguments (first among those that also take its keywords); where a number or condition
    is wanted (``number``: a comparison, a condition, an index, the operands of `//`, `%`
    and `**`, a type's sizes), among values, never an op, rule or built-in function."""
    out: list[Diagnostic] = []
    if isinstance(expr, ast.Name):
        if expr.id not in scope:
            near = scope.all() - scope.callables if number else scope.all()
            out.append(Diagnostic(E_UNKNOWN_NAME, f"unknown name `{expr.id}`", expr.span,
                                  hint=did_you_mean(expr.id, near)
                                  or (None if number else _installed_hint(expr.id))))
        return out
    if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name) \
            and expr.func.id not in scope:  # a near name only among those taking its arguments
        given, words = len(expr.args), {k.name for k in expr.kwargs}
        fits = [n for n in scope.all() if scope.arities.get(n, given) >= given]
        takes = [n for n in fits if words <= scope.keywords.get(n, words)]
        out.append(Diagnostic(E_UNKNOWN_NAME, f"unknown name `{expr.func.id}`", expr.func.span,
                              hint=did_you_mean(expr.func.id, takes)
                              or did_you_mean(expr.func.id, fits)
                              or did_you_mean(expr.func.id, scope.all(), near=False)
                              or _installed_hint(expr.func.id)))
        for child in (*expr.args, *(k.value for k in expr.kwargs)):
            out += _names(child, scope)
        return out
    if isinstance(expr, ast.Let):
        out = _unique(expr.targets, [expr.span] * len(expr.targets), "name")
        return out + _names(expr.value, scope) + _names(expr.body, _Scope(expr.targets, scope))
    if isinstance(expr, ast.Lambda):
        out = _unique(expr.params, [expr.span] * len(expr.params), "stream")
        return out + _names(expr.body, _Scope(expr.params, scope))
    if isinstance(expr, ast.ListComp):
        out = []
        for clause in expr.clauses:  # each clause sees the names bound before it
            out += _names(clause.iter, scope)
            scope = _Scope(clause.targets, scope)
            out += _names(clause.cond, scope) if clause.cond is not None else []
        return out + _names(expr.elt, scope)
    if isinstance(expr, ast.Call):
        out += _unique([k.name for k in expr.kwargs], [k.span for k in expr.kwargs],
                       "keyword argument")
    for child in _children(expr):
        out += _names(child, scope, _wants_number(expr, child, number))
    return out


def _installed_hint(name: str) -> str | None:
    """A near name among the ops installed packages declare, saying which package."""
    near = near_installed(name)
    return None if near is None else \
        f"did you mean `{near[0]}` (an op of the installed package {near[1]})?"


def _wants_number(parent: ast.Expr, child: ast.Expr, number: bool) -> bool:
    """Whether ``child`` of ``parent`` must be a number or a condition, never a block."""
    if isinstance(parent, ast.Compare | ast.BoolOp | ast.Not):
        return True
    if isinstance(parent, ast.BinOp) and parent.op in ("//", "%", "**"):
        return True
    if isinstance(parent, ast.If):
        return child is parent.cond or number
    if isinstance(parent, ast.Index):
        return child is parent.index
    return number and isinstance(parent, ast.BinOp | ast.Neg)


def _children(expr: ast.Expr) -> list[ast.Expr]:
    """The expressions directly inside ``expr`` (a keyword argument's value, a clause)."""
    return [v.value if isinstance(v, ast.Keyword) else v  # type: ignore[misc]
            for v in ast.children(expr) if not isinstance(v, ast.Param)]


def _calls(expr: ast.Expr, name: str) -> list[ast.Expr]:
    if isinstance(expr, ast.Name) and expr.id == name:
        return [expr]
    if isinstance(expr, ast.Lambda):
        return []  # a lambda's body runs when applied, not when the rule is evaluated
    found: list[ast.Expr] = []
    for child in _children(expr):
        found += _calls(child, name)
    return found


def _can_stop(expr: ast.Expr, name: str) -> bool:
    """Whether some evaluation of ``expr`` avoids referring to rule ``name`` again."""
    if isinstance(expr, ast.If):
        return _can_stop(expr.cond, name) and (_can_stop(expr.then, name)
                                               or _can_stop(expr.orelse, name))
    if isinstance(expr, ast.Name):
        return expr.id != name
    if isinstance(expr, ast.Lambda):
        return True
    if isinstance(expr, ast.Let) and name in expr.targets:
        return _can_stop(expr.value, name)
    return all(_can_stop(c, name) for c in _children(expr))


def _base_case(rule: ast.Def) -> list[Diagnostic]:
    shadowed = any(p.name == rule.name for p in rule.params)
    if shadowed or _can_stop(rule.body, rule.name):
        return []
    calls = _calls(rule.body, rule.name)
    notes = tuple(Note("it calls itself here", c.span) for c in calls[:3])
    return [Diagnostic(E_NO_BASE_CASE,
                       f"`{rule.name}` never reaches a base case: every path through its "
                       "body uses it again", rule.name_span, notes,
                       "add a branch that stops, e.g. `if n == 1 then base else ...`")]
