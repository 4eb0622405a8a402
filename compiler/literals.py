"""A model's parameters as the IR keeps them (`Graph.params`): data (numbers, strings,
booleans, `none`, lists of those) as itself, so `model.ir.params["C"]` is 3; anything else (a
block, an op or a rule given as a parameter) as its spelling, a `Spelled`. Backends, the
printer and `info` render them here, in .ssn text or as JSON data, and so need nothing from
the evaluator's value types."""

from __future__ import annotations

import math
from typing import Any

from ..grammar.format import quote

ParamValue = Any
"""int | float | bool | str | None | Spelled | a tuple of those (a recursive type)."""


class Spelled(str):
    """A parameter whose value is not data, kept as the spec spells it (`conv(64, k=3)`)."""

    __slots__ = ()


def is_data(value: object) -> bool:
    """Whether ``value`` is data the IR keeps as itself (a `Spelled` is text, not data)."""
    if isinstance(value, tuple):
        return all(is_data(v) for v in value)
    return value is None or isinstance(value, bool | int | float | str)


def ssn_text(value: ParamValue) -> str:
    """``value`` as the language writes it: `true`, `none`, `0.15`, `"name"`, `[1, 2]`, and
    a `Spelled` value as spelled."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, Spelled):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(ssn_text(v) for v in value) + "]"
    raise TypeError(f"not a parameter value: {type(value).__name__}")


def json_data(value: ParamValue) -> Any:
    """``value`` as JSON data: numbers, strings, booleans and lists as themselves; an
    infinite float and a `Spelled` value as their text."""
    if isinstance(value, tuple):
        return [json_data(v) for v in value]
    if isinstance(value, Spelled):
        return str(value)
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    return ssn_text(value)
