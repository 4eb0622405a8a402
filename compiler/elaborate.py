"""Elaboration: evaluate a model's parameters and body, then instantiate the resulting block
into IR nodes inside a scope tree.

Rule calls are pure and memoised, so a recursive rule like `fractal` evaluates to a compact
description (a DAG of blocks) in time linear in its depth; the description's expanded size
is computed before a single node is made, which is how `fractal(C=30, ...)` is refused at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ..grammar import ast
from .diagnostics import (
    E_ARGUMENT,
    E_BUDGET,
    E_EXPANSION,
    E_FAIL,
    E_NOT_LOWERED,
    E_OPTION,
    E_RECURSION_DEPTH,
    E_TYPE,
    E_UNKNOWN_NAME,
    E_VALUE_LIMIT,
    MAX_INT,
    Note,
    Span,
    SsnError,
    did_you_mean,
    error,
)
from .ir import Graph, Node, Scope, make_node
from .ops import INPUT_TYPES, OPS, REQUIRED, OpDecl, input_type
from .values import (
    Block,
    Builtin,
    Env,
    GroupBlock,
    LambdaBlock,
    OpCtor,
    ParBlock,
    PrimBlock,
    Rule,
    ScopeBlock,
    SeqBlock,
    SharedBlock,
    Value,
    Wire,
    kind_of,
    show,
)


@dataclass(frozen=True)
class Limits:
    """Expansion and evaluation limits, sized so every published configuration fits with room
    to spare (FractalNet C=4 is about 400 nodes; C=8 about 6,400) while any spec ends within
    a second: ``max_steps`` counts evaluation steps and list items made, ``max_items`` bounds
    one list's length."""

    max_nodes: int = 50_000
    max_depth: int = 100
    max_calls: int = 20_000
    max_steps: int = 300_000
    max_items: int = 100_000

    def __post_init__(self) -> None:
        for name in ("max_nodes", "max_depth", "max_calls", "max_steps", "max_items"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_INT:
                flag = "--" + name.replace("_", "-")
                raise error(E_OPTION, f"{flag} must be a positive integer, not {value!r}",
                            Span.unknown(flag))


class _Effects:
    """Counts side effects (nodes made, `shared` values made) so memoisation stays sound."""

    def __init__(self) -> None:
        self.count = 0


@dataclass
class NodeBuilder:
    """Accumulates node records and scopes while blocks are instantiated."""

    limits: Limits
    nodes: list[Node] = field(default_factory=list)
    scopes: dict[int, Scope] = field(default_factory=dict)
    current: int = 0
    # shared block id -> the parameter-owning nodes its first instance made, in order
    shared_owners: dict[int, list[str]] = field(default_factory=dict)
    # stack of (shared block id, owners being recorded or replayed, cursor)
    sharing: list[tuple[int, list[str], list[int]]] = field(default_factory=list)

    def open_scope(self, rule: str, args: tuple[tuple[str, str], ...], span: Span,
                   transparent: bool = False) -> int:
        sid = len(self.scopes)
        self.scopes[sid] = Scope(sid, self.current if sid else None, rule, args, span,
                                 transparent)
        return sid

    def add(self, op: OpDecl, attrs: Mapping[str, Any], inputs: Sequence[str], span: Span,
            **extra: Any) -> str:
        if len(self.nodes) >= self.limits.max_nodes:
            raise error(E_EXPANSION,
                        f"the model expands beyond {self.limits.max_nodes:,} nodes", span,
                        hint="reduce the model's size, or raise the limit (--max-nodes)")
        index = len(self.nodes)
        name = f"#{index}"
        owner = None
        if op.has_params and self.sharing:
            _, owners, cursor = self.sharing[-1]
            if cursor[0] < 0:
                owners.append(name)
            else:
                owner = owners[cursor[0]]
                cursor[0] += 1
        self.nodes.append(make_node(name=name, op=op.name, attrs=attrs, inputs=tuple(inputs),
                                    scope=self.current, span=span, index=index,
                                    param_owner=owner, **extra))
        return name


class Elaborator:
    """Evaluates expressions of one program. One instance per model elaboration."""

    def __init__(self, globals_env: Env, limits: Limits | None = None):
        self.globals = globals_env
        self.limits = limits or Limits()
        self.builder = NodeBuilder(self.limits)
        self.effects = _Effects()
        self.memo: dict[Any, Value] = {}
        self.depth = 0
        self.calls = 0
        self.steps = 0
        """Evaluation steps and list items made so far: the budget's deterministic counter."""

    # ------------------------------------------------------------ expressions

    def eval(self, expr: ast.Expr, env: Env) -> Value:
        """The value of ``expr`` in ``env``."""
        self.charge(1, expr.span)
        method: Callable[[Any, Env], Value] = getattr(self, "_eval_" + type(expr).__name__)
        return method(expr, env)

    def charge(self, steps: int, span: Span) -> None:
        """Count ``steps`` against the evaluation budget; past it, stop with E0405."""
        self.steps += steps
        if self.steps > self.limits.max_steps:
            raise error(E_BUDGET, f"evaluating the spec takes more than "
                        f"{self.limits.max_steps:,} steps", span,
                        hint="a comprehension, list or recursion here grows too large")

    def new_list(self, items: tuple[Value, ...], span: Span) -> tuple[Value, ...]:
        """A list value, checked against the length limit and charged to the budget."""
        if len(items) > self.limits.max_items:
            raise error(E_VALUE_LIMIT, f"a list of {len(items):,} items is longer than the "
                        f"limit of {self.limits.max_items:,}", span)
        self.charge(len(items), span)
        return items

    def _eval_Number(self, e: ast.Number, env: Env) -> Value:
        return e.value

    def _eval_String(self, e: ast.String, env: Env) -> Value:
        return e.value

    def _eval_Bool(self, e: ast.Bool, env: Env) -> Value:
        return e.value

    def _eval_NoneLit(self, e: ast.NoneLit, env: Env) -> Value:
        return None

    def _eval_Name(self, e: ast.Name, env: Env) -> Value:
        try:
            return env.lookup(e.id)
        except KeyError:
            raise error(E_UNKNOWN_NAME, f"unknown name `{e.id}`", e.span,
                        hint=did_you_mean(e.id, env.visible())) from None

    def _eval_ListLit(self, e: ast.ListLit, env: Env) -> Value:
        return tuple(self.eval(x, env) for x in e.items)

    def _eval_TupleLit(self, e: ast.TupleLit, env: Env) -> Value:
        return tuple(self.eval(x, env) for x in e.items)

    def _eval_ListComp(self, e: ast.ListComp, env: Env) -> Value:
        items = self.eval(e.iter, env)
        if not isinstance(items, tuple):
            raise error(E_TYPE, f"a comprehension iterates over a list, not {kind_of(items)}",
                        e.iter.span)
        out = []
        for item in items:
            if e.destructure:
                if not isinstance(item, tuple) or len(item) != len(e.targets):
                    raise error(E_TYPE, f"cannot unpack {show(item)} into "
                                f"({', '.join(e.targets)})", e.iter.span)
                inner = Env(dict(zip(e.targets, item, strict=True)), env)
            else:
                inner = Env({e.targets[0]: item}, env)
            if e.cond is not None and not self._bool(e.cond, inner):
                continue
            out.append(self.eval(e.elt, inner))
        return self.new_list(tuple(out), e.span)

    def _eval_Index(self, e: ast.Index, env: Env) -> Value:
        obj, idx = self.eval(e.obj, env), self.eval(e.index, env)
        if not isinstance(obj, tuple) or not isinstance(idx, int) or isinstance(idx, bool):
            raise error(E_TYPE, f"cannot index {kind_of(obj)} with {kind_of(idx)}", e.span)
        if not -len(obj) <= idx < len(obj):
            raise error(E_TYPE, f"index {idx} is out of range for a list of {len(obj)}",
                        e.index.span)
        return obj[idx]

    def _bool(self, expr: ast.Expr, env: Env) -> bool:
        value = self.eval(expr, env)
        if not isinstance(value, bool):
            raise error(E_TYPE, f"a condition must be true or false, not {kind_of(value)}",
                        expr.span)
        return value

    def _eval_If(self, e: ast.If, env: Env) -> Value:
        return self.eval(e.then if self._bool(e.cond, env) else e.orelse, env)

    def _eval_Let(self, e: ast.Let, env: Env) -> Value:
        return self.eval(e.body, Env({e.name: self.eval(e.value, env)}, env))

    def _eval_Lambda(self, e: ast.Lambda, env: Env) -> Value:
        return LambdaBlock(e.params, e.body, env, e.span)

    def _eval_Not(self, e: ast.Not, env: Env) -> Value:
        return not self._bool(e.operand, env)

    def _eval_BoolOp(self, e: ast.BoolOp, env: Env) -> Value:
        left = self._bool(e.left, env)
        if e.op == "and":
            return left and self._bool(e.right, env)
        return left or self._bool(e.right, env)

    def _eval_Neg(self, e: ast.Neg, env: Env) -> Value:
        return check_int(-self._number(self.eval(e.operand, env), e.operand.span), e.span)

    def _number(self, value: Value, span: Span) -> int | float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise error(E_TYPE, f"expected a number, got {kind_of(value)}", span)
        return value

    def _eval_Compare(self, e: ast.Compare, env: Env) -> Value:
        left, right = self.eval(e.left, env), self.eval(e.right, env)
        if e.op in ("==", "!="):
            same = _key(left) == _key(right)
            return same if e.op == "==" else not same
        a, b = self._number(left, e.left.span), self._number(right, e.right.span)
        return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[e.op]

    def _eval_Repeat(self, e: ast.Repeat, env: Env) -> Value:
        return self._repeat(self.as_block(self.eval(e.body, env), e.body.span), e.count, e.span)

    def _repeat(self, block: Block, count: int, span: Span) -> Block:
        if count < 0:
            raise error(E_TYPE, f"cannot repeat a block {count} times", span)
        if count == 0:
            return PrimBlock(OPS["identity"], (), span)
        work = self.estimate(block, steps=True)
        if count * work > self.limits.max_nodes:  # checked before anything is allocated
            raise error(E_EXPANSION, f"repeating a block of {work:,} step"
                        f"{'s' if work != 1 else ''} {count:,} times makes "
                        f"{count * work:,}, more than the limit of {self.limits.max_nodes:,}",
                        span, hint="reduce the count, or raise the limit (--max-nodes)")
        return block if count == 1 else SeqBlock((block,) * count, span)

    def _eval_BinOp(self, e: ast.BinOp, env: Env) -> Value:
        left, right = self.eval(e.left, env), self.eval(e.right, env)
        if e.op == ">>":
            if _is_wires(left):
                return self.apply(self.as_block(right, e.right.span), _wires(left), e.span)
            return _seq(self.as_block(left, e.left.span), self.as_block(right, e.right.span),
                        e.span)
        if _is_num(left) and _is_num(right):
            return _arith(e.op, left, right, e.span)
        if e.op == "+" and isinstance(left, tuple) and isinstance(right, tuple):
            return self.new_list(left + right, e.span)
        if e.op in ("+", "*") and isinstance(left, Wire) and isinstance(right, Wire):
            return self.join_wires(OPS["sum" if e.op == "+" else "mul"], (left, right), {},
                                   e.span)
        if e.op in ("*", "×"):
            for blk, cnt, bspan in ((left, right, e.left.span), (right, left, e.right.span)):
                if isinstance(cnt, int) and not isinstance(cnt, bool) and _blockish(blk):
                    return self._repeat(self.as_block(blk, bspan), cnt, e.span)
        if e.op == "+" and _blockish(left) and _blockish(right):
            return ParBlock(OPS["sum"], (self.as_block(left, e.left.span),
                                         self.as_block(right, e.right.span)), (), e.span)
        raise error(E_TYPE, f"`{e.op}` does not apply to {kind_of(left)} and {kind_of(right)}",
                    e.span, hint=_binop_hint(e.op, left, right))

    # ------------------------------------------------------------ calls

    def _eval_Call(self, e: ast.Call, env: Env) -> Value:
        fn = self.eval(e.func, env)
        args = tuple(self.eval(a, env) for a in e.args)
        kwargs = {k.name: (self.eval(k.value, env), k.span) for k in e.kwargs}
        spans = tuple(a.span for a in e.args)
        return self.call(fn, args, kwargs, spans, e.span)

    def call(self, fn: Value, args: tuple[Value, ...],
             kwargs: Mapping[str, tuple[Value, Span]], spans: tuple[Span, ...],
             span: Span) -> Value:
        """Call ``fn``: configure a rule or op, run a built-in, or apply a block to wires."""
        wired = bool(args) and all(_is_wires(a) for a in args)
        if isinstance(fn, OpCtor) and (fn.op.is_join or fn.op.name == "mul"):
            return self._call_join(fn, args, kwargs, spans, span)
        if isinstance(fn, Builtin):
            return fn.fn(self, args, kwargs, spans, span)
        if isinstance(fn, Block):
            if not wired or kwargs:
                raise error(E_TYPE, "a block is applied to wires only, e.g. `block(x)`; "
                            "its arguments were given when it was made", span)
            return self.apply(fn, _flatten_wires(args), span)
        if isinstance(fn, Rule) and not fn.decl.params and (args or kwargs):
            target = self._call_rule(fn, (), {}, (), span)
            if isinstance(target, Rule | OpCtor | Builtin):  # an alias: `def act = conv`
                return self.call(target, args, kwargs, spans, span)
        if isinstance(fn, Rule | OpCtor):
            if wired and not kwargs and not _required(fn):
                return self.apply(self.as_block(fn, span), _flatten_wires(args), span)
            if isinstance(fn, OpCtor):
                return self._configure_op(fn.op, args, kwargs, spans, span)
            return self._call_rule(fn, args, kwargs, spans, span)
        raise error(E_TYPE, f"{kind_of(fn)} cannot be called", span)

    def _bind(self, what: str, names: Sequence[str], args: tuple[Value, ...],
              kwargs: Mapping[str, tuple[Value, Span]], spans: tuple[Span, ...],
              span: Span, decl_span: Span | None = None) -> dict[str, Value]:
        notes = [Note(f"`{what}` is defined here", decl_span)] if decl_span else []
        if len(args) > len(names):
            raise error(E_ARGUMENT, f"`{what}` takes {len(names)} argument"
                        f"{'s' if len(names) != 1 else ''}, got {len(args)}", spans[len(names)],
                        notes=notes, hint=f"its parameters are ({', '.join(names)})")
        bound = dict(zip(names, args, strict=False))
        for key, (value, kspan) in kwargs.items():
            if key not in names:
                raise error(E_ARGUMENT, f"`{what}` has no parameter `{key}`", kspan,
                            notes=notes, hint=did_you_mean(key, names)
                            or f"its parameters are ({', '.join(names)})")
            if key in bound:
                raise error(E_ARGUMENT, f"`{key}` is given twice", kspan, notes=notes)
            bound[key] = value
        return bound

    def _configure_op(self, op: OpDecl, args: tuple[Value, ...],
                      kwargs: Mapping[str, tuple[Value, Span]], spans: tuple[Span, ...],
                      span: Span) -> Block:
        if not op.lowered:
            raise error(E_NOT_LOWERED, f"`{op.name}` is declared but not yet lowered", span,
                        hint=f"`{op.name}` parses and its arguments are checked, but no "
                        "backend compiles it yet")
        bound = self._bind(op.name, op.attr_names, args, kwargs, spans, span)
        attrs: dict[str, Value] = {}
        where = dict(zip(op.attr_names, spans, strict=False))
        where.update({k: s for k, (_, s) in kwargs.items()})
        for attr in op.attrs:
            if attr.name in bound:
                value = bound[attr.name]
                if isinstance(value, int) and not isinstance(value, bool) and float in attr.types:
                    value = float(value)
                if not isinstance(value, attr.types) or (
                        isinstance(value, bool) and bool not in attr.types):
                    want = " or ".join(sorted({_type_name(t) for t in attr.types}))
                    raise error(E_TYPE, f"`{op.name}`'s `{attr.name}` ({attr.doc}) must be "
                                f"{want}, got {kind_of(value)}", where.get(attr.name, span))
                attrs[attr.name] = value
            elif attr.default is REQUIRED:
                raise error(E_ARGUMENT, f"`{op.name}` needs `{attr.name}` ({attr.doc})", span,
                            hint=f"write `{op.name}({', '.join(_required(OpCtor(op)))}"
                            f"{', ...' if len(op.attrs) > 1 else ''})`")
            else:
                attrs[attr.name] = attr.default
        _check_ranges(op, attrs, where, span)
        return PrimBlock(op, tuple(attrs.items()), span)

    def _call_rule(self, rule: Rule, args: tuple[Value, ...],
                   kwargs: Mapping[str, tuple[Value, Span]], spans: tuple[Span, ...],
                   span: Span) -> Value:
        decl = rule.decl
        names = [p.name for p in decl.params]
        bound = self._bind(rule.name, names, args, kwargs, spans, span, decl.name_span)
        frame = Env({}, rule.globals)
        for p in decl.params:
            if p.name in bound:
                frame.names[p.name] = bound[p.name]
            elif p.default is not None:
                frame.names[p.name] = self.eval(p.default, frame)
            else:
                missing = [q.name for q in decl.params if q.name not in bound and q.default is None]
                raise error(E_ARGUMENT, f"`{rule.name}` is missing argument"
                            f"{'s' if len(missing) > 1 else ''} "
                            f"{', '.join(f'`{m}`' for m in missing)}", span,
                            notes=[Note(f"`{rule.name}` is defined here", decl.name_span)])
        values = tuple(frame.names[n] for n in names)
        key = (id(rule), tuple(_key(v) for v in values))
        if key in self.memo:
            return self.memo[key]
        self.calls += 1
        if self.calls > self.limits.max_calls:
            raise error(E_EXPANSION, f"more than {self.limits.max_calls:,} rule calls while "
                        "elaborating", span, notes=[Note(f"last call: `{rule.name}`",
                                                         decl.name_span)],
                        hint="a recursion that makes `shared` values at every level cannot be "
                        "memoised; reduce its depth")
        if self.depth >= self.limits.max_depth:
            shown = ", ".join(f"{n}={show(v)}" for n, v in zip(names, values, strict=True))
            raise error(E_RECURSION_DEPTH, f"recursion deeper than {self.limits.max_depth} "
                        f"levels in `{rule.name}`", span,
                        notes=[Note(f"`{rule.name}` is defined here", decl.name_span),
                               Note(f"the deepest call was {rule.name}({shown})")],
                        hint="check that every recursive call moves towards the base case")
        display = tuple((n, show(v)) for n, v in zip(names, values, strict=True))
        for name, value in frame.names.items():
            if isinstance(value, Block) and not isinstance(value, GroupBlock):
                frame.names[name] = GroupBlock(name, value, value.span)
        before = self.effects.count
        self.depth += 1
        try:
            if any(_is_wires(v) for v in values):
                with self._scope(rule.name, display, span):
                    result = self.eval(decl.body, frame)
            else:
                result = self.eval(decl.body, frame)
        except SsnError as exc:
            raise _note_call_site(exc, rule, display, span) from None
        finally:
            self.depth -= 1
        if isinstance(result, Block):
            result = ScopeBlock(rule.name, display, result, span)
        if self.effects.count == before:
            self.memo[key] = result
        return result

    def _call_join(self, fn: OpCtor, args: tuple[Value, ...],
                   kwargs: Mapping[str, tuple[Value, Span]], spans: tuple[Span, ...],
                   span: Span) -> Value:
        op = fn.op
        if len(args) == 1 and isinstance(args[0], tuple):
            args, spans = args[0], spans * len(args[0])
        if not args:
            raise error(E_ARGUMENT, f"`{op.name}` needs at least one input", span)
        if all(_is_num(a) for a in args) and not kwargs and op.fold is not None:
            nums = [self._number(a, s) for a, s in zip(args, spans, strict=True)]
            return check_int(op.fold(nums), span)
        block = self._configure_op(op, (), kwargs, (), span)
        assert isinstance(block, PrimBlock)
        attrs = dict(block.attrs)
        if all(isinstance(a, Wire) for a in args):
            return self.join_wires(op, args, attrs, span)
        if any(isinstance(a, Wire) for a in args):
            raise error(E_TYPE, f"`{op.name}` joins wires or blocks, not a mix of both", span)
        if op.arity is not None and len(args) != op.arity:
            raise error(E_ARGUMENT, f"`{op.name}` takes {op.arity} inputs, got {len(args)}",
                        span)
        branches = tuple(self.as_block(a, s) for a, s in zip(args, spans, strict=True))
        return ParBlock(op, branches, tuple(attrs.items()), span)

    def join_wires(self, op: OpDecl, wires: Sequence[Value], attrs: Mapping[str, Value],
                   span: Span) -> Wire:
        """A join node over existing wires (`x + y`, `mean(a, b)` inside `=>`)."""
        if op.arity is not None and len(wires) != op.arity:
            raise error(E_ARGUMENT, f"`{op.name}` takes {op.arity} inputs, got {len(wires)}",
                        span)
        full = {**op.defaults(), **attrs}
        self.effects.count += 1
        return Wire(self.builder.add(op, full, [w.node for w in wires], span), span)

    # ------------------------------------------------------------ blocks

    def as_block(self, value: Value, span: Span) -> Block:
        """Coerce a value used as structure: ops and rules with all-default parameters
        are blocks; anything else that is not a block is a type error."""
        if isinstance(value, Block):
            return value
        if isinstance(value, OpCtor | Rule):
            missing = _required(value)
            if missing:
                name = value.op.name if isinstance(value, OpCtor) else value.name
                raise error(E_ARGUMENT, f"`{name}` needs argument{'s' if len(missing) > 1 else ''}"
                            f" {', '.join(f'`{m}`' for m in missing)} before it can be used "
                            "as a block", span,
                            hint=f"write `{name}({', '.join(missing)})`")
            made = self.call(value, (), {}, (), span)
            return made if isinstance(made, Block) else self.as_block(made, span)  # an alias
        if isinstance(value, tuple) and value and all(_blockish(v) for v in value):
            raise error(E_TYPE, "a list of blocks is not a block", span,
                        hint="chain them with `seq([...])` or join them with `mean([...])`")
        raise error(E_TYPE, f"expected a block, got {kind_of(value)}", span)

    @contextmanager
    def _scope(self, rule: str, args: tuple[tuple[str, str], ...], span: Span,
               transparent: bool = False) -> Iterator[None]:
        b = self.builder
        parent = b.current
        b.current = b.open_scope(rule, args, span, transparent)
        try:
            yield
        finally:
            b.current = parent

    def apply(self, block: Block, wires: tuple[Wire, ...], span: Span) -> Value:
        """Instantiate ``block`` on ``wires``; one wire comes back as itself, several as a tuple."""
        out = self.instantiate(block, wires)
        return out[0] if len(out) == 1 else out

    def instantiate(self, block: Block, wires: tuple[Wire, ...]) -> tuple[Wire, ...]:
        """Make the nodes of one fresh instance of ``block`` reading ``wires``."""
        if isinstance(block, PrimBlock):
            arity = block.op.arity if block.op.arity is not None else len(wires)
            if len(wires) != arity:
                raise error(E_TYPE, f"`{block.op.name}` takes {arity} stream"
                            f"{'s' if arity != 1 else ''}, got {len(wires)}", block.span)
            if block.op.passthrough:
                return wires
            self.effects.count += 1
            name = self.builder.add(block.op, dict(block.attrs), [w.node for w in wires],
                                    block.span)
            return (Wire(name, block.span),)
        if isinstance(block, SeqBlock):
            for part in block.parts:
                wires = self.instantiate(part, wires)
            return wires
        if isinstance(block, ParBlock):
            outs = []
            for branch in block.branches:
                got = self.instantiate(branch, wires)
                if len(got) != 1:
                    raise error(E_TYPE, f"a `{block.op.name}` branch must produce one stream, "
                                f"this one produces {len(got)}", branch.span)
                outs.append(got[0])
            return (self.join_wires(block.op, outs, dict(block.attrs), block.span),)
        if isinstance(block, ScopeBlock):
            with self._scope(block.rule, block.args, block.span):
                return self.instantiate(block.inner, wires)
        if isinstance(block, GroupBlock):
            with self._scope(block.label, (), block.span, transparent=True):
                return self.instantiate(block.inner, wires)
        if isinstance(block, SharedBlock):
            return self._instantiate_shared(block, wires)
        if isinstance(block, LambdaBlock):
            if len(block.params) != len(wires):
                raise error(E_TYPE, f"this block takes {len(block.params)} stream"
                            f"{'s' if len(block.params) != 1 else ''}, got {len(wires)}",
                            block.span)
            env = Env(dict(zip(block.params, wires, strict=True)), block.env)
            result = self.eval(block.body, env)
            if not _is_wires(result):
                raise error(E_TYPE, f"a `=>` block must return wires, got {kind_of(result)}",
                            block.body.span,
                            hint="apply blocks to the parameters, e.g. `(x) => conv(64)(x)`"
                            if isinstance(result, Block) else None)
            return _flatten_wires((result,))
        raise AssertionError(f"unknown block {block!r}")

    def _instantiate_shared(self, block: SharedBlock, wires: tuple[Wire, ...]) -> tuple[Wire, ...]:
        b = self.builder
        key = id(block)
        first = key not in b.shared_owners
        owners = b.shared_owners.setdefault(key, [])
        cursor = [-1 if first else 0]
        b.sharing.append((key, owners, cursor))
        try:
            return self.instantiate(block.inner, wires)
        finally:
            b.sharing.pop()

    # ------------------------------------------------------------ size estimate

    def estimate(self, block: Block, *, steps: bool = False) -> int:
        """Nodes an instance of ``block`` would make (named-wire blocks count once); with
        ``steps``, the instantiation steps instead (an `identity` counts too)."""
        memo: dict[int, int] = {}

        def size(b: Block) -> int:
            got = memo.get(id(b))
            if got is not None:
                return got
            if isinstance(b, PrimBlock):
                n = 0 if b.op.passthrough and not steps else 1
            elif isinstance(b, SeqBlock):
                n = sum(size(p) for p in b.parts)
            elif isinstance(b, ParBlock):
                n = 1 + sum(size(p) for p in b.branches)
            elif isinstance(b, ScopeBlock | SharedBlock | GroupBlock):
                n = size(b.inner)
            else:
                n = 1
            memo[id(b)] = n
            return n

        return size(block)

    # ------------------------------------------------------------ models

    def elaborate_model(self, model: ast.Model, overrides: Mapping[str, Value],
                        override_spans: Mapping[str, Span] | None = None) -> Graph:
        """Evaluate a model with its parameters (defaults overridden) and build its IR."""
        names = [p.name for p in model.params]
        for key in overrides:
            if key not in names:
                span = (override_spans or {}).get(key, model.name_span)
                raise error(E_OPTION, f"model `{model.name}` has no parameter `{key}`", span,
                            notes=[Note(f"`{model.name}` is defined here", model.name_span)],
                            hint=did_you_mean(key, names)
                            or f"its parameters are ({', '.join(names) or 'none'})")
        frame = Env({}, self.globals)
        for p in model.params:
            if p.name in overrides:
                frame.names[p.name] = overrides[p.name]
            elif p.default is not None:
                frame.names[p.name] = self.eval(p.default, frame)
            else:
                raise error(E_OPTION, f"model `{model.name}` needs a value for `{p.name}`",
                            model.name_span, hint=f"pass --set {p.name}=VALUE")
        itype = self._input_type(model.input_type, frame)
        value = self.eval(model.body, frame)
        block = self.as_block(value, model.body.span)
        size = self.estimate(block)
        if size > self.limits.max_nodes:
            raise error(E_EXPANSION, f"model `{model.name}` would expand to {size:,} nodes, "
                        f"more than the limit of {self.limits.max_nodes:,}", model.body.span,
                        hint="a recursive rule doubles its size at every level; reduce it "
                        "(e.g. fewer fractal columns), or raise the limit (--max-nodes)")
        b = self.builder
        b.open_scope(model.name, tuple((n, show(frame.names[n])) for n in names), model.span)
        inp = b.add(OPS["input"], {}, [], model.input_type.span, shape=itype.shape,
                    dtype=itype.dtype)
        outs = self.instantiate(block, (Wire(inp, model.input_type.span),))
        sizes = ", ".join(show(a) for a in self._type_args(model.input_type, frame))
        return Graph.build(model.name, b.nodes, b.scopes, [inp], [w.node for w in outs],
                           {n: frame.names[n] for n in names},
                           f"{model.input_type.name}[{sizes}]")

    def _type_args(self, t: ast.TypeExpr, env: Env) -> list[int]:
        args = []
        for a in t.args:
            v = self.eval(a, env)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise error(E_TYPE, f"a type's sizes are positive integers, got {show(v)}",
                            a.span)
            args.append(v)
        return args

    def _input_type(self, t: ast.TypeExpr, env: Env) -> Any:
        if t.name not in INPUT_TYPES:
            raise error(E_TYPE, f"unknown input type `{t.name}`", t.span,
                        hint=did_you_mean(t.name, INPUT_TYPES) or
                        "input types: " + "; ".join(d for d, _ in INPUT_TYPES.values()))
        args = self._type_args(t, env)
        if not args:
            raise error(E_TYPE, f"`{t.name}` needs sizes", t.span,
                        hint=INPUT_TYPES[t.name][0])
        try:
            return input_type(t.name, args)
        except ValueError as exc:
            raise error(E_TYPE, str(exc), t.span) from None


# ---------------------------------------------------------------- helpers

STDLIB_PREFIX = "<stdlib>"


def _note_call_site(exc: SsnError, rule: Rule, display: tuple[tuple[str, str], ...],
                    span: Span) -> SsnError:
    """An error inside the standard library also points at the user's call that led there."""
    first = exc.diagnostics[0]
    if (first.span.file.startswith(STDLIB_PREFIX) and not span.file.startswith(STDLIB_PREFIX)
            and not any(n.message.startswith("in `") for n in first.notes)):
        args = ", ".join(f"{k}={v}" for k, v in display)
        exc.with_note(Note(f"in `{rule.name}({args})`, called from here", span))
    return exc


def _is_num(v: Value) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _blockish(v: Value) -> bool:
    return isinstance(v, Block | OpCtor | Rule)


def _is_wires(v: Value) -> bool:
    return isinstance(v, Wire) or (isinstance(v, tuple) and bool(v)
                                   and all(isinstance(x, Wire) for x in v))


def _wires(v: Value) -> tuple[Wire, ...]:
    return (v,) if isinstance(v, Wire) else tuple(v)


def _flatten_wires(args: tuple[Value, ...]) -> tuple[Wire, ...]:
    out: list[Wire] = []
    for a in args:
        out.extend(_wires(a))
    return tuple(out)


def _required(fn: Rule | OpCtor) -> list[str]:
    if isinstance(fn, OpCtor):
        return [a.name for a in fn.op.attrs if a.default is REQUIRED]
    return [p.name for p in fn.decl.params if p.default is None]


def _seq(left: Block, right: Block, span: Span) -> SeqBlock:
    parts: list[Block] = []
    for b in (left, right):
        parts.extend(b.parts if isinstance(b, SeqBlock) else (b,))
    return SeqBlock(tuple(parts), span)


def _key(v: Value) -> Any:
    """A hashable key that keeps `1`, `1.0` and `true` apart."""
    if isinstance(v, tuple):
        return ("list", tuple(_key(x) for x in v))
    if isinstance(v, bool | int | float | str) or v is None:
        return (type(v).__name__, v)
    return ("obj", id(v))


def _arith(op: str, a: int | float, b: int | float, span: Span) -> int | float:
    try:
        if op == "+":
            return check_int(a + b, span)
        if op == "-":
            return check_int(a - b, span)
        if op in ("*", "×"):
            return check_int(a * b, span)
        if op == "/":
            return a / b
        if op == "//":
            return check_int(a // b, span)
        if op == "%":
            return a % b
        if (isinstance(a, int) and isinstance(b, int) and abs(a) > 1 and b > 0
                and b * math.log2(abs(a)) > 64):  # decided before computing a tower
            raise error(E_VALUE_LIMIT, f"`{a} ** {b}` is larger than 2**63 - 1", span,
                        hint="integers in a spec are at most 2**63 - 1")
        result = a ** b
        if isinstance(result, complex) or (isinstance(result, float) and not math.isfinite(result)):
            raise ArithmeticError
        return check_int(result, span)
    except ZeroDivisionError:
        raise error(E_TYPE, "division by zero", span) from None
    except (ArithmeticError, OverflowError):
        raise error(E_TYPE, f"`{a} {op} {b}` has no finite real value", span) from None


def check_int(value: int | float, span: Span) -> int | float:
    """``value``, unless it is an integer beyond 2**63 - 1 (E0404)."""
    if isinstance(value, int) and not -MAX_INT - 1 <= value <= MAX_INT:
        raise error(E_VALUE_LIMIT, "an integer beyond 2**63 - 1", span,
                    hint="integers in a spec are at most 2**63 - 1 = 9,223,372,036,854,775,807")
    return value


def _binop_hint(op: str, left: Value, right: Value) -> str | None:
    if op == "+" and (isinstance(left, Wire) or isinstance(right, Wire)):
        return "inside `=>`, apply blocks to wires first: `x + conv(64)(x)`"
    if op in ("*", "×"):
        return "repeat a block with `block × 3`, `block x3` or `block * 3`"
    return None


def _type_name(t: type) -> str:
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string",
            type(None): "`none`"}.get(t, t.__name__)


def _check_ranges(op: OpDecl, attrs: Mapping[str, Value], where: Mapping[str, Span],
                  span: Span) -> None:
    """Each attribute against the range its declaration gives (compiler/ops.py)."""
    for attr in op.attrs:
        value = attrs.get(attr.name)
        if attr.range is not None and value is not None and value not in attr.range:
            raise error(E_TYPE, f"`{op.name}`'s `{attr.name}` must be {attr.range.words}, "
                        f"got {show(value)}", where.get(attr.name, span))


# ---------------------------------------------------------------- built-ins

Args = tuple[Value, ...]
Kwargs = Mapping[str, tuple[Value, Span]]


def _no_kwargs(name: str, kwargs: Kwargs) -> None:
    if kwargs:
        _, (_, span) = next(iter(kwargs.items()))
        raise error(E_ARGUMENT, f"`{name}` takes no keyword arguments", span)


def _ints(el: Elaborator, name: str, args: Args, spans: tuple[Span, ...], span: Span,
          lo: int, hi: int) -> list[int]:
    if not lo <= len(args) <= hi:
        raise error(E_ARGUMENT, f"`{name}` takes {lo}..{hi} arguments, got {len(args)}", span)
    out = []
    for a, s in zip(args, spans, strict=True):
        if not isinstance(a, int) or isinstance(a, bool):
            raise error(E_TYPE, f"`{name}` takes integers, got {kind_of(a)}", s)
        out.append(a)
    return out


def _list_arg(name: str, args: Args, spans: tuple[Span, ...], span: Span) -> tuple[Value, ...]:
    if len(args) != 1 or not isinstance(args[0], tuple):
        raise error(E_TYPE, f"`{name}` takes one list", spans[0] if spans else span)
    items: tuple[Value, ...] = args[0]
    return items


def _b_range(el: Elaborator, args: Args, kw: Kwargs, spans: tuple[Span, ...], span: Span) -> Value:
    _no_kwargs("range", kw)
    n = _ints(el, "range", args, spans, span, 1, 3)
    if len(n) == 3 and n[2] == 0:
        raise error(E_ARGUMENT, "`range` with a step of 0", spans[2])
    r = range(*n)
    count = (r.stop - r.start + r.step + (-1 if r.step > 0 else 1)) // r.step
    if count > el.limits.max_items:
        raise error(E_VALUE_LIMIT, f"a range of {count:,} items is longer than the limit of "
                    f"{el.limits.max_items:,}", span)
    return el.new_list(tuple(r), span)


def _b_len(el: Elaborator, args: Args, kw: Kwargs, spans: tuple[Span, ...], span: Span) -> Value:
    _no_kwargs("len", kw)
    return len(_list_arg("len", args, spans, span))


def _b_zip(el: Elaborator, args: Args, kw: Kwargs, spans: tuple[Span, ...], span: Span) -> Value:
    _no_kwargs("zip", kw)
    for a, s in zip(args, spans, strict=True):
        if not isinstance(a, tuple):
            raise error(E_TYPE, f"`zip` takes lists, got {kind_of(a)}", s)
    lengths = {len(a) for a in args}
    if len(lengths) > 1:
        raise error(E_TYPE, f"`zip` of lists of different lengths {sorted(lengths)}", span)
    return tuple(zip(*args, strict=True))


def _b_enumerate(el: Elaborator, args: Args, kw: Kwargs, spans: tuple[Span, ...],
                 span: Span) -> Value:
    _no_kwargs("enumerate", kw)
    return tuple(enumerate(_list_arg("enumerate", args, spans, span), start=1))


def _b_seq(el: Elaborator, args: Args, kw: Kwargs, spans: tuple[Span, ...], span: Span) -> Value:
    _no_kwargs("seq", kw)
    items = args[0] if len(args) == 1 and isinstance(args[0], tuple) else args
    item_spans = spans * len(items) if len(args) == 1 else spans
    if not items:
        return PrimBlock(OPS["identity"], (), span)
    blocks = [el.as_block(v, s) for v, s in zip(items, item_spans, strict=True)]
    out: Block = blocks[0]
    for b in blocks[1:]:
        out = _seq(out, b, span)
    return out if len(blocks) > 1 else SeqBlock((out,), span)


def _b_shared(el: Elaborator, args: Args, kw: Kwargs, spans: tuple[Span, ...],
              span: Span) -> Value:
    _no_kwargs("shared", kw)
    if len(args) != 1:
        raise error(E_ARGUMENT, f"`shared` takes one block, got {len(args)} arguments", span)
    el.effects.count += 1
    return SharedBlock(el.as_block(args[0], spans[0]), span)


def _b_repeat(el: Elaborator, args: Args, kw: Kwargs, spans: tuple[Span, ...],
              span: Span) -> Value:
    _no_kwargs("repeat", kw)
    if len(args) != 2 or not isinstance(args[1], int) or isinstance(args[1], bool):
        raise error(E_ARGUMENT, "`repeat` takes a block and a count", span)
    return el._repeat(el.as_block(args[0], spans[0]), args[1], span)


def _b_fail(el: Elaborator, args: Args, kw: Kwargs, spans: tuple[Span, ...],
            span: Span) -> Value:
    _no_kwargs("fail", kw)
    if len(args) != 1 or not isinstance(args[0], str):
        raise error(E_ARGUMENT, "`fail` takes one message string", span)
    raise error(E_FAIL, args[0], span)


def _numeric(name: str, fn: Callable[..., Value], *, many: bool = False) -> Callable[..., Value]:
    """A numeric built-in of one number, or (``many``) of a list or of two or more numbers."""
    def run(el: Elaborator, args: Args, kw: Kwargs, spans: tuple[Span, ...], span: Span) -> Value:
        _no_kwargs(name, kw)
        from_list = many and len(args) == 1 and isinstance(args[0], tuple)
        if not from_list and (len(args) < 2 if many else len(args) != 1):
            want = "a list or two or more numbers" if many else "one number"
            raise error(E_ARGUMENT, f"`{name}` takes {want}, got {len(args)} argument"
                        f"{'s' if len(args) != 1 else ''}", span)
        items = args[0] if from_list else args
        item_spans = spans * len(items) if from_list else spans
        nums = [el._number(v, s) for v, s in zip(items, item_spans, strict=True)]
        if not nums:
            raise error(E_ARGUMENT, f"`{name}` of nothing", span)
        try:
            return check_int(fn(nums) if many else fn(nums[0]), span)
        except (ValueError, OverflowError) as exc:
            raise error(E_TYPE, f"`{name}`: {exc}", span) from None
    return run


BUILTINS: dict[str, Builtin] = {
    b.name: b
    for b in (
        Builtin("range", _b_range, "range(n), range(a, b), range(a, b, step): a list of integers"),
        Builtin("len", _b_len, "len(list): its length"),
        Builtin("zip", _b_zip, "zip(a, b, ...): the list of tuples of items at equal positions"),
        Builtin("enumerate", _b_enumerate, "enumerate(list): (i, item) pairs, i from 1"),
        Builtin("seq", _b_seq, "seq([a, b, c]) or seq(a, b, c): the blocks in sequence"),
        Builtin("shared", _b_shared, "shared(block): one set of weights for every use"),
        Builtin("repeat", _b_repeat, "repeat(block, n): the same as `block × n`"),
        Builtin("fail", _b_fail, 'fail("message"): reject the arguments a rule was given'),
        Builtin("min", _numeric("min", min, many=True), "min(a, b, ...) or min(list)"),
        Builtin("abs", _numeric("abs", abs), "abs(x)"),
        Builtin("int", _numeric("int", lambda x: int(x)), "int(x): rounds towards zero"),
        Builtin("float", _numeric("float", float), "float(x)"),
        Builtin("round", _numeric("round", round), "round(x): nearest integer"),
    )
}


def builtin_env() -> Env:
    """The outermost frame: primitive ops (except `input`) and built-in functions."""
    names: dict[str, Value] = {n: OpCtor(op) for n, op in OPS.items() if n != "input"}
    names.update(BUILTINS)
    return Env(names)


__all__ = ["Elaborator", "Limits", "SsnError", "builtin_env", "check_int"]
