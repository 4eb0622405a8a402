"""Elaboration: a model's parameters bound, its body evaluated (compiler/evaluate.py) into a
block, the block's size checked, then instantiated (compiler/instantiate.py) into IR nodes.

Rule calls are pure and memoised, so a recursive rule like `fractal` evaluates to a compact
description (a DAG of blocks) in time linear in its depth; the description's expanded size
is computed before a single node is made, which is how `fractal(C=30, ...)` is refused at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..base.diagnostics import (
    E_EXPANSION,
    E_OPTION,
    E_TYPE,
    Note,
    Span,
    SsnError,
    did_you_mean,
    error,
)
from ..base.options import set_param
from ..grammar import ast
from .builtins import builtin_env
from .evaluate import Evaluator, check_int
from .instantiate import Limits, NamedWires, NodeBuilder
from .ir import Graph, Node
from .ops import INPUT_TYPES, OPS, input_type
from .values import Env, Value, Wire, as_param, kind_of, show


class Elaborator:
    """Builds the IR of one model of a program: the evaluator computes its parameters and
    body, the instantiator (``evaluator.inst``) makes the nodes."""

    def __init__(self, globals_env: Env, limits: Limits | None = None):
        self.evaluator = Evaluator(globals_env, limits)
        self.limits = self.evaluator.limits

    @property
    def builder(self) -> NodeBuilder:
        """The node builder (its ``progress`` hears how far a big model has got)."""
        return self.evaluator.inst.builder

    @property
    def steps(self) -> int:
        """Evaluation steps taken (deterministic; the budget is ``Limits.max_steps``)."""
        return self.evaluator.steps

    def eval(self, expr: ast.Expr, env: Env) -> Value:
        """The value of ``expr`` in ``env``."""
        return self.evaluator.eval(expr, env)

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

        def missing(names: list[str]) -> SsnError:
            return error(E_OPTION, f"model `{model.name}` needs a value for `{names[0]}`",
                         model.name_span, hint=f"pass {set_param(names[0])}")

        ev, inst = self.evaluator, self.evaluator.inst
        frame = ev.bind_params(model.params, overrides, ev.globals, missing)
        self._check_override_kinds(model, overrides, override_spans or {}, frame)
        several = len(model.inputs) > 1
        itypes = [self._input_type(i.type, frame, f"{i.name}_T" if several else "T")
                  for i in model.inputs]
        value = self.eval(model.body, frame)
        block = ev.as_block(value, model.body.span)
        size = inst.estimate(block)
        if size > self.limits.max_nodes:
            raise error(E_EXPANSION, f"model `{model.name}` would expand to {size:,} nodes, "
                        f"more than the limit of {self.limits.max_nodes:,}",
                        **_growth(inst, block, model.body.span))
        b = self.builder
        b.open_scope(model.name, tuple((n, show(frame.names[n])) for n in names), model.span)
        made = [b.add(OPS["input"], {"vocab": t.vocab} if t.vocab is not None else {}, [],
                      i.span, shape=t.shape, dtype=t.dtype)
                for i, t in zip(model.inputs, itypes, strict=True)]
        outs = inst.instantiate(block, tuple(Wire(n, i.span)
                                             for n, i in zip(made, model.inputs, strict=True)))
        _check_params_read(b.nodes)
        types = ", ".join((f"{i.name}: " if several else "") + f"{i.type.name}["
                          + ", ".join(show(a) for a in self._type_args(i.type, frame)) + "]"
                          for i in model.inputs)
        return Graph.build(model.name, b.nodes, b.scopes, made, [w.node for w in outs],
                           {n: as_param(frame.names[n]) for n in names}, types,
                           output_names=outs.named.names if isinstance(outs, NamedWires)
                           else (), input_names=[i.name for i in model.inputs if i.name],
                           labels=b.labels, bindings=b.bindings)

    def _check_override_kinds(self, model: ast.Model, overrides: Mapping[str, Value],
                              spans: Mapping[str, Span], frame: Env) -> None:
        """A model parameter takes its default's kind: an integer, a number, a boolean, a
        string or a list (`--set C=2.5` is refused where C's default is 3)."""
        for p in model.params:
            if p.name not in overrides or p.default is None:
                continue
            default = self.eval(p.default, frame)
            given = overrides[p.name]
            want = _kind(default)
            if want is None or _kind(given) == want or (want == "a number" and
                                                         _kind(given) == "an integer"):
                continue
            raise error(E_TYPE, f"`{p.name}` must be {want}, like its default "
                        f"{show(default)}; got {show(given)}",
                        spans.get(p.name, model.name_span),
                        notes=[Note(f"`{p.name}`'s default is here", p.default.span)])

    def _type_args(self, t: ast.TypeExpr, env: Env) -> list[int]:
        args = []
        for a in t.args:
            v = self.eval(a, env)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise error(E_TYPE, f"a type's sizes are positive integers, got {show(v)}",
                            a.span)
            args.append(v)
        return args

    def _input_type(self, t: ast.TypeExpr, env: Env, time: str) -> Any:
        if t.name not in INPUT_TYPES:
            raise error(E_TYPE, f"unknown input type `{t.name}`", t.span,
                        hint=did_you_mean(t.name, INPUT_TYPES) or
                        "input types: " + "; ".join(d for d, _ in INPUT_TYPES.values()))
        args = self._type_args(t, env)
        if not args:
            raise error(E_TYPE, f"`{t.name}` needs sizes", t.span,
                        hint=INPUT_TYPES[t.name][0])
        try:
            return input_type(t.name, args, time)
        except ValueError as exc:
            raise error(E_TYPE, str(exc), t.span) from None


__all__ = ["Elaborator", "Limits", "SsnError", "builtin_env", "check_int"]


def _growth(inst: Any, block: Any, body: Span) -> dict[str, Any]:
    """Where a model too large is pointed at: its fastest-growing recursion's recursive call
    (with a note at the outermost call), or its body where nothing recurses."""
    hint, where, notes = inst.growth(block)
    return {"span": where or body, "notes": notes, "hint": hint}


def _check_params_read(nodes: list[Node]) -> None:
    """Every `param(...)` value is read by some op (inside a loop's body too), or it is a
    diagnostic at the `param`: a tensor nothing reads would train nothing."""
    every: list[Node] = []
    todo = list(nodes)
    while todo:
        node = todo.pop()
        every.append(node)
        if node.body is not None:
            todo.extend(node.body.nodes_by_name.values())
    read = {r for n in every for r in (*n.inputs, *n.weights)}
    for n in sorted(every, key=lambda n: n.index):
        if n.is_param and n.name not in read:
            raise error(E_TYPE, "this `param` is never read by an op", n.span,
                        hint="give it to an op as an input (`linear(64)(z)`) or as a weight "
                        "(`conv(64, 3, weight = k)`); a model's output is computed, never a "
                        "`param` itself")


def _kind(value: Value) -> str | None:
    """The kind a model parameter's values keep; None for kinds not checked (blocks)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return "an integer"
    kind = kind_of(value)
    return kind if kind in ("a boolean", "a number", "a string", "a list") else None
