"""The typed AST of .ssn: frozen pydantic models, each carrying the span it was parsed from.

Class names follow the grammar's rules (``if_expr`` -> ``If``, ``list_comp`` -> ``ListComp``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any, Literal, TypeVar, Union, get_args

from pydantic import BaseModel, ConfigDict

from ..base.diagnostics import Span


class Node(BaseModel):
    """Base of every AST node: immutable, with its source span."""

    model_config = ConfigDict(frozen=True)

    span: Span


class Number(Node):
    """An integer or floating-point literal."""

    value: int | float


class String(Node):
    """A string literal (used by imports and a few attributes)."""

    value: str


class Bool(Node):
    """`true` or `false`."""

    value: bool


class NoneLit(Node):
    """`none`: an argument left to its op's default behaviour."""


class Name(Node):
    """A reference to a parameter, rule, primitive or built-in."""

    id: str


class ListLit(Node):
    """`[a, b, c]`."""

    items: tuple[Expr, ...]


class TupleLit(Node):
    """`(a, b)`: several values, e.g. the streams a multi-stream block returns."""

    items: tuple[Expr, ...]


class CompFor(Node):
    """One clause of a comprehension, `for target in iter if cond`; target is one name or a
    tuple of names."""

    targets: tuple[str, ...]
    destructure: bool
    iter: Expr
    cond: Expr | None


class ListComp(Node):
    """`[elt for a in A if c for b in B ...]`: the clauses nest left to right, as Python's,
    each seeing the names bound before it."""

    elt: Expr
    clauses: tuple[CompFor, ...]


class Keyword(Node):
    """`name=value` inside a call."""

    name: str
    value: Expr


class Call(Node):
    """`f(args, name=value)`: configures a rule or primitive, or applies a block to wires."""

    func: Expr
    args: tuple[Expr, ...]
    kwargs: tuple[Keyword, ...]


class Index(Node):
    """`xs[i]`."""

    obj: Expr
    index: Expr


BinOpName = Literal["+", "-", "*", "×", "/", "//", "%", "**", ">>"]


class BinOp(Node):
    """Arithmetic, repetition (`block * 3`, `block × 3`) or sequence (`a >> b`)."""

    op: BinOpName
    left: Expr
    right: Expr


class Repeat(Node):
    """The repetition suffix `block x3` / `block ×3`."""

    body: Expr
    count: int


class Compare(Node):
    """`a == b`, `a < b`, ..."""

    op: Literal["==", "!=", "<", "<=", ">", ">="]
    left: Expr
    right: Expr


class BoolOp(Node):
    """`a and b`, `a or b`."""

    op: Literal["and", "or"]
    left: Expr
    right: Expr


class Not(Node):
    """`not a`."""

    operand: Expr


class Neg(Node):
    """`-a`."""

    operand: Expr


class If(Node):
    """`if cond then a else b`; only the chosen branch is evaluated."""

    cond: Expr
    then: Expr
    orelse: Expr


class Let(Node):
    """`let name = value in body`, or `let (a, b) = value in body` unpacking a tuple."""

    targets: tuple[str, ...]
    destructure: bool
    value: Expr
    body: Expr


class Lambda(Node):
    """`(x, y) => body`: a block with named input wires (one per stream)."""

    params: tuple[str, ...]
    body: Expr
    rest: bool = False
    """The last parameter collects the remaining streams as a list (`(x, *states) =>`)."""


Expr = Union[  # noqa: UP007 (a runtime alias pydantic resolves; `|` chains read worse)
    Number,
    String,
    Bool,
    NoneLit,
    Name,
    ListLit,
    TupleLit,
    ListComp,
    Call,
    Index,
    BinOp,
    Repeat,
    Compare,
    BoolOp,
    Not,
    Neg,
    If,
    Let,
    Lambda,
]


class Param(Node):
    """A rule or model parameter, with an optional default."""

    name: str
    default: Expr | None


class TypeExpr(Node):
    """A model's input type, e.g. `tensor[3, 32, 32]` or `tokens[256]`."""

    name: str
    args: tuple[Expr, ...]


class Import(Node):
    """`import "path.ssn"`: path relative to the importing file, inside the spec tree."""

    path: str


class Def(Node):
    """`def name(params) = body`: a rule; rules are values and may recurse."""

    name: str
    params: tuple[Param, ...]
    body: Expr
    name_span: Span


class ModelInput(Node):
    """One input of a model: its name (none for a model's only, unnamed input) and type."""

    name: str | None
    type: TypeExpr


class Model(Node):
    """`model name(params) : inputs = body`: an entry point that compiles to a network; the
    body is applied to the inputs in order."""

    name: str
    params: tuple[Param, ...]
    inputs: tuple[ModelInput, ...]
    body: Expr
    name_span: Span


Item = Union[Import, Def, Model]  # noqa: UP007


class Program(Node):
    """A whole file."""

    file: str
    items: tuple[Item, ...]


for _cls in list(globals().values()):
    if isinstance(_cls, type) and issubclass(_cls, BaseModel) and _cls is not BaseModel:
        _cls.model_rebuild()


_Model = TypeVar("_Model", bound=BaseModel)


def maker(cls: type[_Model]) -> Callable[[dict[str, Any]], _Model]:
    """A constructor of ``cls`` from all its field values, in field order, that skips
    validation: for the parser, whose values have the fields' types by construction. What it
    makes equals ``cls(**values)`` and costs half as much (the fields-set is shared)."""
    fields_set = set(cls.model_fields)
    new, setattr_ = object.__new__, object.__setattr__

    def make(values: dict[str, Any]) -> _Model:
        obj = new(cls)
        setattr_(obj, "__dict__", values)
        setattr_(obj, "__pydantic_fields_set__", fields_set)
        setattr_(obj, "__pydantic_extra__", None)
        setattr_(obj, "__pydantic_private__", None)
        return obj

    return make


def children(node: Node) -> list[Node]:
    """The AST nodes directly inside ``node`` (expressions, parameters, keywords, clauses,
    types, items), in field order: what every walk over the tree reads."""
    out: list[Node] = []
    for name in _child_fields(type(node)):
        value = getattr(node, name)
        if isinstance(value, tuple):
            out += value
        elif value is not None:
            out.append(value)
    return out


@cache
def _child_fields(cls: type[Node]) -> tuple[str, ...]:
    """The fields of ``cls`` that can hold nodes (not its spans, names or numbers)."""
    return tuple(name for name, f in cls.model_fields.items() if _holds_nodes(f.annotation))


def _holds_nodes(annotation: Any) -> bool:
    if isinstance(annotation, type):
        return issubclass(annotation, Node)
    return any(_holds_nodes(a) for a in get_args(annotation))


def strip_spans(node: Any) -> Any:
    """The node as plain data without spans: what round-trip tests compare."""
    if isinstance(node, BaseModel):
        return {
            "__type__": type(node).__name__,
            **{
                k: strip_spans(getattr(node, k))
                for k in type(node).model_fields
                if k not in ("span", "name_span", "file")
            },
        }
    if isinstance(node, tuple):
        return tuple(strip_spans(x) for x in node)
    return node
