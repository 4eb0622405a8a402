"""Attribute mappings as nodes hold them: read-only, and one shared by every node with the
same attributes (a big model holds a few dozen, not one per node: less memory for the
collector and the caches to walk)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from .ops import AttrValue

_FROZEN: dict[tuple[Any, ...], Mapping[str, AttrValue]] = {}
_FROZEN_MAX = 4096  # distinct attribute sets kept (a model has tens; an editor session more)
_ATOMS = (str, int, bool, type(None))


def freeze_attrs(attrs: Mapping[str, AttrValue]) -> Mapping[str, AttrValue]:
    """``attrs`` as a read-only mapping, one shared by every node with the same attributes
    (values and types: `1`, `1.0` and `True` stay apart, as do `0.0` and `-0.0`), so that a
    big model holds a few dozen mappings rather than one per node."""
    key: list[Any] = []
    for k, v in attrs.items():
        t = type(v)
        if t is float:
            key.append((k, t, v, math.copysign(1.0, v)))  # type: ignore[arg-type]
        elif t in _ATOMS or (t is tuple and all(type(x) is int for x in v)):  # type: ignore[union-attr]
            key.append((k, t, v))
        else:
            return MappingProxyType(dict(attrs))
    found = _FROZEN.get(tuple(key))
    if found is None:
        if len(_FROZEN) >= _FROZEN_MAX:
            _FROZEN.clear()
        found = _FROZEN[tuple(key)] = MappingProxyType(dict(attrs))
    return found
