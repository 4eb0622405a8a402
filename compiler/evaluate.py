"""Evaluation: the values of a spec's expressions (numbers, lists, blocks, wires), rule calls
pure and memoised, within the evaluation budget.

A recursive rule like `fractal` evaluates to a compact description (a DAG of blocks) in time
linear in its depth; applying a block to wires hands it to compiler/instantiate.py.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..base.diagnostics import (
    E_ARGUMENT,
    E_BUDGET,
    E_EXPANSION,
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
    note_call_site,
)
from ..grammar import ast
from .instantiate import (
    Instantiator,
    Limits,
    as_wires,
    comes_last,
    flatten_wires,
    is_wires,
)
from .ops import OPS, REQUIRED, OpDecl, TensorValue
from .values import (
    Block,
    Builtin,
    Env,
    GroupBlock,
    LambdaBlock,
    NamedOutputs,
    OpCtor,
    ParBlock,
    PrimBlock,
    Rule,
    ScopeBlock,
    SeqBlock,
    Value,
    Wire,
    kind_of,
    show,
)

REPORT_STEPS = 5_000
"""Evaluation steps between two reports to ``progress`` (a few milliseconds' work)."""


def _weak_eval(evaluator: Evaluator) -> Callable[[ast.Expr, Env], Value]:
    """``evaluator.eval`` for its instantiator, held weakly: a bound method would make the
    pair a cycle, and the nodes the instantiator made would wait for the cyclic collector
    instead of going when the evaluator does."""
    ref = weakref.ref(evaluator)

    def evaluate(expr: ast.Expr, env: Env) -> Value:
        target = ref()
        if target is None:
            raise RuntimeError("an instantiator outlived its evaluator")
        return target.eval(expr, env)
    return evaluate


class Evaluator:
    """Evaluates expressions of one program. One instance per model elaboration; applying a
    block to wires is the instantiator's job (``inst``), which asks back only for the value
    of a `=>` block's body."""

    def __init__(self, globals_env: Env, limits: Limits | None = None):
        self.limits = limits or Limits()
        self.inst = Instantiator(_weak_eval(self), self.limits)
        self.globals = globals_env
        self.memo: dict[Any, Value] = {}
        self.depth = 0
        self.calls = 0
        self.steps = 0
        """Evaluation steps and list items made so far: the budget's deterministic counter."""
        self._report_at = REPORT_STEPS

    # ------------------------------------------------------------ expressions

    def eval(self, expr: ast.Expr, env: Env) -> Value:
        """The value of ``expr`` in ``env``."""
        self.charge(1, expr.span)
        method: Callable[[Any, Env], Value] = getattr(self, "_eval_" + type(expr).__name__)
        return method(expr, env)

    def charge(self, steps: int, span: Span) -> None:
        """Count ``steps`` against the evaluation budget; past it, stop with E0405. Every
        REPORT_STEPS steps, tell the builder's ``progress`` (a checkpoint where a caller may
        also stop work it no longer wants, as the language server does)."""
        self.steps += steps
        if self.steps > self.limits.max_steps:
            raise error(E_BUDGET, f"evaluating the spec takes more than "
                        f"{self.limits.max_steps:,} steps", span,
                        hint="a comprehension, list or recursion here grows too large")
        if self.steps >= self._report_at:
            self._report_at = self.steps + REPORT_STEPS
            progress = self.inst.builder.progress
            if progress is not None:
                progress("evaluating", self.steps, self.limits.max_steps)

    def new_list(self, items: tuple[Value, ...], span: Span) -> tuple[Value, ...]:
        """A list value, checked against the length limit and charged to the budget."""
        self.check_length(len(items), span)
        self.charge(len(items), span)
        return items

    def check_length(self, count: int, span: Span) -> None:
        """E0404 where a list of ``count`` items would pass the length limit."""
        if count > self.limits.max_items:
            raise error(E_VALUE_LIMIT, f"a list of {count:,} items is longer than the "
                        f"limit of {self.limits.max_items:,}", span)

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
        out: list[Value] = []
        self._comprehend(e, 0, env, out)
        return self.new_list(tuple(out), e.span)

    def _comprehend(self, e: ast.ListComp, k: int, env: Env, out: list[Value]) -> None:
        """Clause ``k`` of ``e`` and those after it, in ``env``: items appended to ``out``
        (each checked against the list budget as it comes)."""
        if k == len(e.clauses):
            out.append(self.eval(e.elt, env))
            self.check_length(len(out), e.span)  # stop a nested blow-up as it grows
            return
        clause = e.clauses[k]
        items = self.eval(clause.iter, env)
        if not isinstance(items, tuple):
            raise error(E_TYPE, f"a comprehension iterates over a list, not {kind_of(items)}",
                        clause.iter.span)
        for item in items:
            inner = Env(self.unpack(clause.targets, clause.destructure, item, clause.iter.span),
                        env)
            if clause.cond is not None and not self._bool(clause.cond, inner):
                continue
            self._comprehend(e, k + 1, inner, out)

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
        value = self.eval(e.value, env)
        bound = self.unpack(e.targets, e.destructure, value, e.value.span)
        for name, v in bound.items():
            if isinstance(v, Wire):
                self.inst.builder.label(v.node, name, e.value.span)
                self.inst.builder.bind(v.node, name, e.span)
        return self.eval(e.body, Env(bound, env))

    def unpack(self, targets: tuple[str, ...], destructure: bool, value: Value,
               span: Span) -> dict[str, Value]:
        """``targets`` bound to ``value``: one name, or a tuple's items one to one."""
        if not destructure:
            return {targets[0]: value}
        if not isinstance(value, tuple) or len(value) != len(targets):
            what = (f"{len(value)} value{'s' if len(value) != 1 else ''}"
                    if isinstance(value, tuple) else kind_of(value))
            raise error(E_TYPE, f"cannot unpack {what} into ({', '.join(targets)})", span,
                        hint=f"it needs a tuple of {len(targets)}")
        return dict(zip(targets, value, strict=True))

    def _eval_Lambda(self, e: ast.Lambda, env: Env) -> Value:
        return LambdaBlock(e.params, e.body, env, e.span, e.rest)

    def _eval_Not(self, e: ast.Not, env: Env) -> Value:
        return not self._bool(e.operand, env)

    def _eval_BoolOp(self, e: ast.BoolOp, env: Env) -> Value:
        left = self._bool(e.left, env)
        if e.op == "and":
            return left and self._bool(e.right, env)
        return left or self._bool(e.right, env)

    def _eval_Neg(self, e: ast.Neg, env: Env) -> Value:
        value = self.eval(e.operand, env)
        if isinstance(value, Wire):
            return self.inst.join_wires(OPS["affine"], (value,), {"scale": -1.0}, e.span)
        return check_int(-self.number(value, e.operand.span), e.span)

    def number(self, value: Value, span: Span) -> int | float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise error(E_TYPE, f"expected a number, got {kind_of(value)}", span)
        return value

    def _eval_Compare(self, e: ast.Compare, env: Env) -> Value:
        left, right = self.eval(e.left, env), self.eval(e.right, env)
        if e.op in ("==", "!="):
            same = _key(left) == _key(right)
            return same if e.op == "==" else not same
        a, b = self.number(left, e.left.span), self.number(right, e.right.span)
        return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[e.op]

    def _eval_Repeat(self, e: ast.Repeat, env: Env) -> Value:
        return self.repeat(self.as_block(self.eval(e.body, env), e.body.span), e.count, e.span)

    def repeat(self, block: Block, count: int, span: Span) -> Block:
        if count < 0:
            raise error(E_TYPE, f"cannot repeat a block {count} times", span)
        if count == 0:
            return PrimBlock(OPS["identity"], (), span)
        work = self.inst.estimate(block, steps=True)
        if count * work > self.limits.max_nodes:  # checked before anything is allocated
            raise error(E_EXPANSION, f"repeating a block of {work:,} step"
                        f"{'s' if work != 1 else ''} {count:,} times makes "
                        f"{count * work:,}, more than the limit of {self.limits.max_nodes:,}",
                        span, hint="reduce the count, or raise the limit (--max-nodes)")
        return block if count == 1 else SeqBlock((block,) * count, span)

    def _eval_BinOp(self, e: ast.BinOp, env: Env) -> Value:
        left, right = self.eval(e.left, env), self.eval(e.right, env)
        for side in (left, right):
            if isinstance(side, NamedOutputs):
                raise comes_last(side, e.span)
        if e.op == ">>":
            if is_wires(left):
                return self.inst.apply(self.as_block(right, e.right.span), as_wires(left), e.span)
            return chain(self.as_block(left, e.left.span), self.as_block(right, e.right.span),
                        e.span)
        if _is_num(left) and _is_num(right):
            return _arith(e.op, left, right, e.span)
        if e.op == "+" and isinstance(left, tuple) and isinstance(right, tuple):
            return self.new_list(left + right, e.span)
        if e.op in _WIRE_OPS and isinstance(left, Wire) and isinstance(right, Wire):
            return self.inst.join_wires(OPS[_WIRE_OPS[e.op]], (left, right), {}, e.span)
        if (isinstance(left, Wire) and _is_num(right)) or (
                isinstance(right, Wire) and _is_num(left)):
            return self._scalar(e, left, right)
        if e.op in ("*", "×"):
            for blk, cnt, bspan in ((left, right, e.left.span), (right, left, e.right.span)):
                if isinstance(cnt, int) and not isinstance(cnt, bool) and _blockish(blk):
                    return self.repeat(self.as_block(blk, bspan), cnt, e.span)
        if e.op == "+" and _blockish(left) and _blockish(right):
            return ParBlock(OPS["sum"], (self.as_block(left, e.left.span),
                                         self.as_block(right, e.right.span)), (), e.span)
        raise error(E_TYPE, f"`{e.op}` does not apply to {kind_of(left)} and {kind_of(right)}",
                    e.span, hint=_binop_hint(e.op, left, right))

    def _scalar(self, e: ast.BinOp, left: Value, right: Value) -> Value:
        """A wire and a number (`x * 0.5`, `1 - x`, `x / 2`): one `affine` node."""
        wire, num = (left, right) if isinstance(left, Wire) else (right, left)
        assert isinstance(wire, Wire) and isinstance(num, int | float)
        value = float(num)
        first = wire is left
        if e.op in ("*", "×"):
            attrs = {"scale": value}
        elif e.op == "+":
            attrs = {"shift": value}
        elif e.op == "-":
            attrs = {"shift": -value} if first else {"scale": -1.0, "shift": value}
        elif e.op == "/" and first and value != 0:
            attrs = {"scale": 1.0 / value}
        else:
            raise error(E_TYPE, f"`{e.op}` does not apply to {kind_of(left)} and "
                        f"{kind_of(right)}", e.span,
                        hint="on a wire: `x * k`, `x / k`, `x + k`, `x - k`, `k - x`, `-x`"
                        if not (e.op == "/" and value == 0) else "division by zero")
        if not math.isfinite(value) or not all(math.isfinite(v) for v in attrs.values()):
            raise error(E_TYPE, f"`{num}` is not a finite number", e.span)
        return self.inst.join_wires(OPS["affine"], (wire,), attrs, e.span)

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
        for arg in args:
            if isinstance(arg, NamedOutputs):
                raise comes_last(arg, span)
        wired = bool(args) and all(is_wires(a) for a in args)
        if isinstance(fn, OpCtor) and fn.op.takes_branches:
            return self._call_join(fn, args, kwargs, spans, span)
        if isinstance(fn, Builtin):
            return fn.fn(self, args, kwargs, spans, span)
        if isinstance(fn, Block):
            if not wired or kwargs:
                raise error(E_TYPE, "a block is applied to wires only, e.g. `block(x)`; "
                            "its arguments were given when it was made", span)
            return self.inst.apply(fn, flatten_wires(args), span)
        if isinstance(fn, Rule) and not fn.decl.params and (args or kwargs):
            target = self._call_rule(fn, (), {}, (), span)
            if isinstance(target, Rule | OpCtor | Builtin):  # an alias: `def act = conv`
                return self.call(target, args, kwargs, spans, span)
        if isinstance(fn, Rule | OpCtor):
            if wired and not kwargs and not _required(fn):
                return self.inst.apply(self.as_block(fn, span), flatten_wires(args), span)
            if isinstance(fn, OpCtor):
                return self._configure_op(fn.op, args, kwargs, spans, span)
            return self._call_rule(fn, args, kwargs, spans, span)
        raise error(E_TYPE, f"{kind_of(fn)} cannot be called", span)

    def bind_args(self, what: str, names: Sequence[str], args: tuple[Value, ...],
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

    def bind_params(self, params: Sequence[ast.Param], given: Mapping[str, Value],
                    outer: Env, missing: Callable[[list[str]], SsnError]) -> Env:
        """The frame of a rule or model call: each declared parameter bound to its given value
        or else its default, in order, so a default may read the parameters before it.
        ``missing`` makes the error when parameters without defaults are not given."""
        frame = Env({}, outer)
        for p in params:
            if p.name in given:
                frame.names[p.name] = given[p.name]
            elif p.default is not None:
                frame.names[p.name] = self.eval(p.default, frame)
            else:
                raise missing([q.name for q in params
                               if q.name not in given and q.default is None])
        return frame

    def _configure_op(self, op: OpDecl, args: tuple[Value, ...],
                      kwargs: Mapping[str, tuple[Value, Span]], spans: tuple[Span, ...],
                      span: Span) -> Block:
        bound = self.bind_args(op.name, op.attr_names, args, kwargs, spans, span)
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
                problem = attr.check(value) if attr.check is not None and value is not None \
                    else None
                if problem is not None:
                    raise error(E_TYPE, f"`{op.name}`'s `{attr.name}` ({attr.doc}) {problem}, "
                                f"got {show(value)}", where.get(attr.name, span))
                odd = [v for v in value if not isinstance(v, int) or isinstance(v, bool)] \
                    if isinstance(value, tuple) and attr.check is None else []
                if odd:  # a list attribute holds integers (sizes)
                    raise error(E_TYPE, f"`{op.name}`'s `{attr.name}` ({attr.doc}) must be a "
                                f"list of integers, got one holding {kind_of(odd[0])}",
                                where.get(attr.name, span))
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
        bound = self.bind_args(rule.name, names, args, kwargs, spans, span, decl.name_span)

        def missing(names: list[str]) -> SsnError:
            return error(E_ARGUMENT, f"`{rule.name}` is missing argument"
                         f"{'s' if len(names) > 1 else ''} "
                         f"{', '.join(f'`{m}`' for m in names)}", span,
                         notes=[Note(f"`{rule.name}` is defined here", decl.name_span)])

        frame = self.bind_params(decl.params, bound, rule.globals, missing)
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
        before = self.inst.effects.count
        self.depth += 1
        try:
            if any(is_wires(v) for v in values):
                with self.inst.scope(rule.name, display, span):
                    result = self.eval(decl.body, frame)
            else:
                result = self.eval(decl.body, frame)
        except SsnError as exc:
            raise note_call_site(exc, rule.name, display, span) from None
        finally:
            self.depth -= 1
        if isinstance(result, Block):
            result = ScopeBlock(rule.name, display, result, span)
        if self.inst.effects.count == before:
            self.memo[key] = result
        return result

    def _call_join(self, fn: OpCtor, args: tuple[Value, ...],
                   kwargs: Mapping[str, tuple[Value, Span]], spans: tuple[Span, ...],
                   span: Span) -> Value:
        op = fn.op
        if fn.preset:  # attributes given earlier: `join = mean(merge = false)`, then join(a, b)
            kwargs = {**{k: (v, span) for k, v in fn.preset}, **kwargs}
        if len(args) == 1 and isinstance(args[0], tuple):
            args, spans = args[0], spans * len(args[0])
        if not args:
            if kwargs:  # configured now, joined later: checked as if its inputs were given
                self._configure_op(op, (), kwargs, (), span)
                return OpCtor(op, tuple((k, v) for k, (v, _) in kwargs.items()))
            raise error(E_ARGUMENT, f"`{op.name}` needs at least one input", span,
                        hint=f"join blocks or wires: `{op.name}(a, b)`")
        if all(_is_num(a) for a in args) and not kwargs and op.fold is not None:
            nums = [self.number(a, s) for a, s in zip(args, spans, strict=True)]
            return check_int(op.fold(nums), span)
        block = self._configure_op(op, (), kwargs, (), span)
        assert isinstance(block, PrimBlock)
        attrs = dict(block.attrs)
        if all(isinstance(a, Wire) for a in args):
            return self.inst.join_wires(op, args, attrs, span)
        if any(isinstance(a, Wire) for a in args):
            raise error(E_TYPE, f"`{op.name}` joins wires or blocks, not a mix of both", span)
        if op.arity is not None and len(args) != op.arity:
            raise error(E_ARGUMENT, f"`{op.name}` takes {op.arity} inputs, got {len(args)}",
                        span)
        branches = tuple(self.as_block(a, s) for a, s in zip(args, spans, strict=True))
        return ParBlock(op, branches, tuple(attrs.items()), span)

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



# ---------------------------------------------------------------- helpers


def _is_num(v: Value) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)



def _blockish(v: Value) -> bool:
    return isinstance(v, Block | OpCtor | Rule)



def _required(fn: Rule | OpCtor) -> list[str]:
    if isinstance(fn, OpCtor):
        return [a.name for a in fn.op.attrs if a.default is REQUIRED]
    return [p.name for p in fn.decl.params if p.default is None]



_WIRE_OPS = {"+": "sum", "*": "mul", "×": "mul", "-": "sub", "/": "div"}
"""Binary operators between two wires, and the op each makes."""


def chain(left: Block, right: Block, span: Span) -> SeqBlock:
    """``left >> right`` as one flat sequence."""
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
            type(None): "`none`", tuple: "a list", TensorValue: "a wire"}.get(t, t.__name__)



def _check_ranges(op: OpDecl, attrs: Mapping[str, Value], where: Mapping[str, Span],
                  span: Span) -> None:
    """Each attribute against the range its declaration gives (compiler/ops.py)."""
    for attr in op.attrs:
        value = attrs.get(attr.name)
        if attr.range is not None and attr.check is None and value is not None \
                and value not in attr.range:
            raise error(E_TYPE, f"`{op.name}`'s `{attr.name}` must be {attr.range.words}, "
                        f"got {show(value)}", where.get(attr.name, span))
