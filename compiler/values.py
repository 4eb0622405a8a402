"""The values the elaborator computes with: numbers, lists, rules, op constructors, wires, and
blocks (descriptions of structure; each place a block is used makes a fresh instance)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..base.diagnostics import Span
from ..grammar import ast
from .literals import ParamValue, Spelled, is_data, json_data, ssn_text
from .ops import OpDecl, TensorValue

Value = Any
"""int | float | bool | str | None | tuple[Value, ...] | Rule | OpCtor | Builtin | Wire | Block"""


class Env:
    """A chain of name -> value frames, innermost first."""

    def __init__(self, names: dict[str, Value], parent: Env | None = None):
        self.names = names
        self.parent = parent

    def lookup(self, name: str) -> Value:
        """The innermost binding of ``name``; raises KeyError if there is none."""
        env: Env | None = self
        while env is not None:
            if name in env.names:
                return env.names[name]
            env = env.parent
        raise KeyError(name)

    def visible(self) -> dict[str, Value]:
        """Every bound name with its value, the innermost binding of each (for the static
        checks and their did-you-mean hints)."""
        out: dict[str, Value] = {}
        env: Env | None = self
        while env is not None:
            for name, value in env.names.items():
                out.setdefault(name, value)
            env = env.parent
        return out


@dataclass(frozen=True, eq=False)
class Rule:
    """A `def`: called to configure; a rule whose parameters all have defaults is also a block."""

    decl: ast.Def
    globals: Env

    @property
    def name(self) -> str:
        """The rule's name."""
        return self.decl.name


@dataclass(frozen=True, eq=False)
class OpCtor:
    """A primitive op by name, before its attributes are given (`conv`, `relu`, `mean`); a
    join configured without inputs (`mean(merge = false)`) keeps those attributes in
    ``preset`` until it is given them."""

    op: OpDecl
    preset: tuple[tuple[str, Value], ...] = ()


@dataclass(frozen=True, eq=False)
class Builtin:
    """A built-in function of values (`zip`, `range`, `seq`, `shared`, ...)."""

    name: str
    fn: Callable[..., Value]
    doc: str


@dataclass(frozen=True, eq=False)
class Wire(TensorValue):
    """A tensor inside a named-wire block: the output of node ``node`` (a `param(...)` value
    too); an op given one as `weight` reads it as its weight."""

    node: str
    span: Span


@dataclass(frozen=True)
class Init:
    """How a `param(...)` value starts: `normal(mean, std)` or `uniform(low, high)`, as the
    initializer name with its fill (mean, low) and scale (std, width)."""

    name: str
    fill: float
    scale: float

    def __str__(self) -> str:
        if self.name == "normal":
            return f"normal({self.fill!r}, {self.scale!r})"
        return f"uniform({self.fill!r}, {self.fill + self.scale!r})"


class Block:
    """A description of structure with one or more input streams and output streams."""

    span: Span


@dataclass(frozen=True, eq=False)
class PrimBlock(Block):
    """One primitive op with its attributes fixed."""

    op: OpDecl
    attrs: tuple[tuple[str, Value], ...]
    span: Span


@dataclass(frozen=True, eq=False)
class SeqBlock(Block):
    """`a >> b >> c`."""

    parts: tuple[Block, ...]
    span: Span


@dataclass(frozen=True, eq=False)
class ParBlock(Block):
    """`join(a, b, ...)`: every branch reads the same inputs; a join node combines them."""

    op: OpDecl
    branches: tuple[Block, ...]
    attrs: tuple[tuple[str, Value], ...]
    span: Span


@dataclass(frozen=True, eq=False)
class LambdaBlock(Block):
    """`(x, y) => body`: evaluated when applied, with the parameters bound to wires."""

    params: tuple[str, ...]
    body: ast.Expr
    env: Env
    span: Span
    rest: bool = False
    """The last parameter takes the remaining streams, as a list."""


@dataclass(frozen=True, eq=False)
class ScopeBlock(Block):
    """The block a rule call returned; instantiating it opens a scope for that rule instance."""

    rule: str
    args: tuple[tuple[str, str], ...]
    inner: Block
    span: Span


@dataclass(frozen=True, eq=False)
class GroupBlock(Block):
    """A block passed to a rule as argument ``label``: each instance opens a transparent scope,
    which adds nothing to names but marks where one instance of the argument begins and ends
    (a fractal's base instances are told apart this way)."""

    label: str
    inner: Block
    span: Span


@dataclass(frozen=True, eq=False)
class SharedBlock(Block):
    """`shared(b)`: every use applies one set of weights."""

    inner: Block
    span: Span


@dataclass(frozen=True, eq=False)
class ScanBlock(Block):
    """`scan(cell, state = [...])`: ``cell`` applied along the time axis of a sequence, reading
    the step's input and the states and returning the step's output and the new states; the
    states start at zero with the given sizes. Not unrolled: one loop node owns the cell. It
    gives the step outputs, then with ``final`` each state's final value."""

    cell: Block
    states: tuple[int, ...]
    reverse: bool
    final: bool
    span: Span


@dataclass(frozen=True, eq=False)
class NamedOutputs:
    """`outputs(logits = a, boundaries = b)`: the model's outputs, named (the last thing a
    model's body returns)."""

    names: tuple[str, ...]
    wires: tuple[Wire, ...]
    span: Span


def kind_of(value: Value) -> str:
    """A user-facing name for a value's kind, for type errors."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "`none`"
    if isinstance(value, tuple):
        return "a list"
    if isinstance(value, Wire):
        return "a wire"
    if isinstance(value, Init):
        return "an initializer"
    if isinstance(value, NamedOutputs):
        return "named outputs"
    if isinstance(value, Rule):
        return f"the rule `{value.name}`"
    if isinstance(value, OpCtor):
        return f"the op `{value.op.name}`"
    if isinstance(value, Builtin):
        return f"the built-in `{value.name}`"
    if isinstance(value, Block):
        return "a block"
    return type(value).__name__


def json_value(value: Value) -> Any:
    """``value`` as JSON data: numbers, strings, booleans and lists as themselves; anything
    else (a block, an op, an infinite float) as its `show` text."""
    return json_data(as_param(value))


def as_param(value: Value) -> ParamValue:
    """``value`` as the IR keeps a model parameter: data as itself, else its spelling."""
    if isinstance(value, tuple):
        return tuple(as_param(v) for v in value)
    return value if is_data(value) else Spelled(show(value))


def show(value: Value) -> str:
    """A short, deterministic rendering of a value for scope signatures and messages."""
    if is_data(value):
        return ssn_text(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(show(v) for v in value) + "]"
    if isinstance(value, ScopeBlock):
        return f"{value.rule}({', '.join(f'{k}={v}' for k, v in value.args)})"
    if isinstance(value, PrimBlock):
        inner = ", ".join(f"{k}={show(v)}" for k, v in value.attrs
                          if value.op.defaults().get(k, object()) != v)
        return f"{value.op.name}({inner})" if inner else value.op.name
    if isinstance(value, SharedBlock):
        return f"shared({show(value.inner)})"
    if isinstance(value, GroupBlock):
        return show(value.inner)
    if isinstance(value, SeqBlock):
        return " >> ".join(show(p) for p in value.parts)
    if isinstance(value, ParBlock):
        return f"{value.op.name}({', '.join(show(b) for b in value.branches)})"
    if isinstance(value, Rule):
        return value.name
    if isinstance(value, OpCtor):
        preset = ", ".join(f"{k}={show(v)}" for k, v in value.preset)
        return f"{value.op.name}({preset})" if preset else value.op.name
    if isinstance(value, Builtin):
        return value.name
    if isinstance(value, LambdaBlock):
        return f"({', '.join(value.params)}) => ...@{value.span.line}:{value.span.col}"
    if isinstance(value, Wire):
        return f"wire@{value.span.line}:{value.span.col}"
    if isinstance(value, Init):
        return str(value)
    return "?"
