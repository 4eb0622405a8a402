"""Spec text in generated Python source. Every piece of it (strings, names, paths, numbers)
enters the source only through these helpers: as an escaped literal, an escaped docstring or
comment, or a checked ASCII identifier. So no spec can ever become code."""

from __future__ import annotations

import keyword
import math
import re
from collections.abc import Iterable

_NOT_IDENT = re.compile(r"[^A-Za-z0-9_]")


def literal(value: object) -> str:
    """A Python expression that evaluates to ``value`` (None, bool, int, float, str, or a
    tuple/list of those); floats that have no literal (inf, nan) become ``float('inf')``."""
    if value is None or isinstance(value, bool | int | str):
        return repr(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else f"float({str(value)!r})"
    if isinstance(value, tuple | list):
        inner = ", ".join(literal(v) for v in value)
        if isinstance(value, list):
            return f"[{inner}]"
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    raise TypeError(f"no Python literal for {type(value).__name__}")


def escape(text: str) -> str:
    """``text`` with backslashes, quotes and every non-printable character escaped: safe inside
    a docstring or comment, and still on one line."""
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch.isprintable():  # excludes line breaks, controls and bidi overrides
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    return "".join(out)


def docstring(lines: Iterable[str], indent: str = "") -> list[str]:
    """A triple-quoted docstring holding ``lines`` (each escaped), as source lines."""
    body = [escape(line) for line in lines]
    if not body:
        body = [""]
    body[0] = '"""' + body[0]
    body[-1] += '"""'
    return [indent + line if line else "" for line in body]


def comment(text: str) -> str:
    """A one-line comment showing ``text``."""
    return "# " + escape(text)


def is_plain(name: str) -> bool:
    """Whether ``name`` can be written as-is as a Python name (ASCII, not a keyword)."""
    return name.isascii() and name.isidentifier() and not keyword.iskeyword(name)


def identifier(text: str, taken: set[str], *, prefix: str = "v_") -> str:
    """A fresh ASCII identifier derived from ``text``: never a keyword, never private
    (``_...``), never one of ``taken`` (which it joins)."""
    base = _NOT_IDENT.sub("_", text).lstrip("_") or "v"
    if base[0].isdigit() or keyword.iskeyword(base):
        base = prefix + base
    name = base
    while name in taken or keyword.iskeyword(name):
        name += "_"
    taken.add(name)
    return name
