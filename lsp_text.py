"""Positions and text for `ssnc lsp`: URIs and paths, LSP's UTF-16 columns and ranges, and
the small readings of spec text and AST the analysis makes at the cursor (the call it is
in, the argument it is at, where a name is read)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from .base.diagnostics import Span
from .grammar import ast


def path_of(uri: str) -> Path:
    """The file a `file://` URI names."""
    return Path(unquote(urlparse(uri).path))


def uri_of(path: str | Path) -> str:
    """The `file://` URI of ``path``."""
    return Path(path).resolve().as_uri()


def utf16(line: str, col: int) -> int:
    """The UTF-16 offset of 1-based character column ``col`` of ``line`` (LSP's columns)."""
    return len(line[:max(col - 1, 0)].encode("utf-16-le")) // 2


def from_utf16(line: str, offset: int) -> int:
    """The 1-based character column at UTF-16 ``offset`` of ``line``."""
    units = 0
    for i, ch in enumerate(line):
        if units >= offset:
            return i + 1
        units += 2 if ord(ch) > 0xFFFF else 1
    return len(line) + 1


@dataclass
class Range:
    """An LSP range: 0-based lines, UTF-16 columns."""

    start: tuple[int, int]
    end: tuple[int, int]


def open_call(before: str) -> str | None:
    """The name whose call the text before the cursor is inside (`conv(64, ` -> `conv`)."""
    depth = 0
    for i in range(len(before) - 1, -1, -1):
        ch = before[i]
        if ch in ")]":
            depth += 1
        elif ch in "([":
            if depth == 0:
                m = re.search(r"([A-Za-z_][A-Za-z0-9_]*)\s*$", before[:i]) if ch == "(" else None
                return m.group(1) if m else None
            depth -= 1
    return None


def walk(node: Any) -> list[Any]:
    """Every AST node inside ``node`` (itself included)."""
    out, stack = [], [node]
    while stack:
        n = stack.pop()
        out.append(n)
        stack += ast.children(n)
    return out


def uses(expr: Any, name: str) -> list[Span]:
    """The spans of ``name`` read in ``expr``, not where an inner `let`, stream or loop
    variable of that name hides it."""
    out: list[Span] = []
    stack = [expr]
    while stack:
        n = stack.pop()
        if isinstance(n, ast.Name):
            if n.id == name:
                out.append(n.span)
            continue
        if isinstance(n, ast.Let) and name in n.targets:
            stack.append(n.value)
            continue
        if isinstance(n, ast.Lambda) and name in n.params:
            continue
        stack += ast.children(n)
    return sorted(out, key=lambda sp: (sp.line, sp.col))


def head(span: Span, name: str) -> Span:
    """The first ``name``-long stretch of ``span`` (a parameter's name)."""
    return Span(file=span.file, line=span.line, col=span.col, end_line=span.line,
                end_col=span.col + len(name))


def depth0_commas(text: str) -> int:
    """Commas in ``text`` outside any brackets: which argument the cursor is at."""
    depth = count = 0
    for ch in text:
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch == "," and depth == 0:
            count += 1
    return count


def attr_detail(a: Any) -> str:
    """`int, default 3`: an attribute's types and default, for completion."""
    from .compiler.literals import ssn_text
    from .compiler.ops import REQUIRED

    kinds = "/".join(sorted({t.__name__.replace("NoneType", "none") for t in a.types}))
    default = "required" if a.default is REQUIRED else f"default {ssn_text(a.default)}"
    return f"{kinds}, {default}: {a.doc}"
