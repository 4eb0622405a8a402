"""Axis roles: what each axis of a value means (batch, time, channels, spatial), carried
with its shape through shape inference so that ops read the axes they mean rather than the
positions a rank implies.

A role is one letter and a value's roles are a string, one letter per axis, read like a
layout: `NCHW` is an image, `NTC` a sequence of vectors, `NCT` a channels-first time series,
`NCL` a 1-D signal, `NCDHW` a volume. `_` is an axis with no role of its own (one a reshape
or an `unsqueeze` made, or a `param`'s)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

Dim = int | str
"""An axis size: a number, or a symbol (`N`, `T`; `T+2` where padding moved a symbol)."""

BATCH, TIME, CHANNEL, OTHER = "N", "T", "C", "_"
SPATIAL = "DHWL"
"""Spatial roles: `L` for the one axis of a 1-D signal, `H W` for an image, `D H W` for a
volume."""
SLIDING = SPATIAL + TIME
"""The axes a convolution or a pool slides over."""

ROLES = "NTCDHWL_"
"""Every role, in the order docs list them."""

NAMES = {BATCH: "batch", TIME: "time", CHANNEL: "channel", OTHER: "unnamed", "D": "depth",
         "H": "height", "W": "width", "L": "length"}
"""Each role's name in diagnostics and docs."""

SPATIAL_ROLES = {1: "L", 2: "HW", 3: "DHW"}
"""The spatial roles of an input with 1, 2 or 3 spatial axes."""


class Axes(tuple[Dim, ...]):
    """A shape whose axes carry roles: a tuple of sizes (so everything that reads shapes
    reads it unchanged, and it compares as its sizes) with ``roles``, one letter per axis."""

    roles: str

    def __new__(cls, dims: Iterable[Dim], roles: str) -> Axes:
        made = super().__new__(cls, dims)
        assert len(roles) == len(made), (tuple(made), roles)
        made.roles = roles
        return made

    def __getnewargs__(self) -> tuple[tuple[Dim, ...], str]:
        return (tuple(self), self.roles)


def roles_of(shape: Sequence[Dim]) -> str:
    """``shape``'s roles: those it carries, else what its symbols say (`N` batch, `T` time)
    and no role for the other axes (a parameter's shape)."""
    if isinstance(shape, Axes):
        return shape.roles
    return "".join(d if d in (BATCH, TIME) else OTHER for d in shape)


def describe(role: str) -> str:
    """`time (T)`."""
    return f"{NAMES.get(role, role)} ({role})"


def symbol_offset(dim: str) -> tuple[str, int]:
    """A symbolic size as its symbol and offset: `T+2` -> (`T`, 2), `T` -> (`T`, 0)."""
    for sign in "+-":
        head, found, tail = dim.rpartition(sign)
        if found and head and tail.isdigit():
            return head, int(tail) if sign == "+" else -int(tail)
    return dim, 0


def add_to(dim: Dim, offset: int) -> Dim:
    """``dim`` + ``offset``, symbolic where ``dim`` is (`T` + 2 is `T+2`)."""
    if isinstance(dim, int):
        return dim + offset
    symbol, now = symbol_offset(dim)
    total = now + offset
    return symbol if total == 0 else f"{symbol}{total:+d}"
