"""A small pretty-printing document algebra and its printer (Wadler's "prettier printer", in
the form Prettier uses): groups print on one line when they fit the width, else broken at their
line breaks. The formatter builds documents; this module only lays them out.

A document is a ``str``, a ``list`` of documents, or one of the node classes below. The printer
is iterative, so nesting is bounded by the parser's limits, not by Python's stack."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

Doc = Union[str, "Line", "Fresh", "Group", "Nest", "Align", "Fill", list["Doc"]]


@dataclass(eq=False)
class Line:
    """A break: a space on one line (nothing when ``soft``), else a newline and the indent."""

    soft: bool = False


@dataclass(eq=False)
class Fresh:
    """What follows starts a line of its own (after a comment); forces enclosing groups to
    break."""


@dataclass(eq=False)
class Group:
    """On one line if it fits, else with every direct break taken."""

    body: Doc
    hard: bool = field(default=False, init=False)
    """Set by ``propagate``: a ``Fresh`` inside forbids the flat form."""


@dataclass(eq=False)
class Nest:
    """Breaks inside indent ``by`` more than the enclosing indent."""

    by: int
    body: Doc


@dataclass(eq=False)
class Align:
    """Breaks inside indent to the column where this starts."""

    body: Doc


@dataclass(eq=False)
class Fill:
    """``items[0] sep items[1] sep ...``: each separator breaks only if the next item does not
    fit on the line (text filled like a paragraph)."""

    items: list[Doc]
    sep: Doc
    start: int = 0
    """The first item still to print (the printer walks a fill without copying it)."""
    hard: bool = field(default=False, init=False)


@dataclass(eq=False)
class _Tail:
    """In ``_fits``: the separators and items of ``fill`` from item ``index`` on."""

    fill: Fill
    index: int


LINE = Line()
SOFT = Line(soft=True)
FRESH = Fresh()

_FLAT, _BREAK = 0, 1


def propagate(doc: Doc) -> bool:
    """Mark every group and fill that holds a ``Fresh`` as hard; return whether ``doc`` does."""
    # post-order without recursion: (node, children done?)
    stack: list[tuple[Doc, bool]] = [(doc, False)]
    hard: dict[int, bool] = {}
    while stack:
        node, done = stack.pop()
        kids = _children(node)
        if not done:
            stack.append((node, True))
            stack.extend((k, False) for k in kids)
            continue
        h = isinstance(node, Fresh) or any(hard[id(k)] for k in kids)
        if isinstance(node, Group | Fill):
            node.hard = h
        hard[id(node)] = h
    return hard[id(doc)]


def _children(node: Doc) -> list[Doc]:
    if isinstance(node, list):
        return node
    if isinstance(node, Group | Nest | Align):
        return [node.body]
    if isinstance(node, Fill):
        return [*node.items[node.start:], node.sep]
    return []


_Cmd = tuple[int, int, "Doc | _Tail"]  # indent, mode, document


def render(doc: Doc, width: int) -> str:
    """Lay ``doc`` out in ``width`` columns; lines carry no trailing spaces."""
    propagate(doc)
    out: list[str] = []
    pos = 0  # the column after what `out` holds
    fresh_line = True  # nothing but indentation on the current line
    pending = False  # a Fresh asked for a new line before the next text
    stack: list[_Cmd] = [(0, _BREAK, doc)]

    def newline(indent: int) -> None:
        nonlocal pos, fresh_line, pending
        while out and out[-1].endswith(" "):
            out[-1] = out[-1].rstrip(" ")
        out.append("\n" + " " * indent)
        pos, fresh_line, pending = indent, True, False

    while stack:
        indent, mode, node = stack.pop()
        if isinstance(node, str):
            if not node:
                continue
            if pending:
                newline(indent)
            out.append(node)
            pos += len(node)
            fresh_line = False
        elif isinstance(node, list):
            stack.extend((indent, mode, k) for k in reversed(node))
        elif isinstance(node, Line):
            if mode == _BREAK:
                newline(indent)
            elif not node.soft and not pending:
                out.append(" ")
                pos += 1
        elif isinstance(node, Fresh):
            pending = pending or not fresh_line
        elif isinstance(node, Nest):
            stack.append((indent + node.by, mode, node.body))
        elif isinstance(node, Align):
            stack.append((pos, mode, node.body))
        elif isinstance(node, Group):
            flat = mode == _FLAT or (not node.hard and not pending and _fits(
                [(indent, _FLAT, node.body)], stack, width - pos))
            stack.append((indent, _FLAT if flat and not node.hard else _BREAK, node.body))
        elif isinstance(node, Fill):
            _fill(node, indent, mode, stack, width - pos)
    text = "".join(out)
    return "\n".join(line.rstrip(" ") for line in text.split("\n"))


def _fill(node: Fill, indent: int, mode: int, stack: list[_Cmd], room: int) -> None:
    """Prettier's fill: decide the first item and the separator after it, push the rest."""
    items, start = node.items, node.start
    if start >= len(items):
        return
    first = items[start]
    last = start + 1 == len(items)
    first_fits = _fits([(indent, _FLAT, first)], stack if last else [], room, must_be_flat=True)
    if last:
        stack.append((indent, _FLAT if first_fits else _BREAK, first))
        return
    rest = Fill(items, node.sep, start + 1)
    rest.hard = node.hard
    both = _fits([(indent, _FLAT, [first, node.sep, items[start + 1]])],
                 stack if start + 2 == len(items) else [], room, must_be_flat=True)
    stack.append((indent, mode, rest))
    stack.append((indent, _FLAT if both else _BREAK, node.sep))
    stack.append((indent, _FLAT if first_fits else _BREAK, first))


def _fits(cmds: list[_Cmd], rest: list[_Cmd], room: int, must_be_flat: bool = False) -> bool:
    """Whether ``cmds`` (then ``rest``, up to its first line break) fit in ``room`` columns."""
    todo = list(reversed(cmds))
    rest_index = len(rest)
    while room >= 0:
        if not todo:
            if rest_index == 0:
                return True
            rest_index -= 1
            todo.append(rest[rest_index])
            must_be_flat = False  # what follows may break as it will
            continue
        indent, mode, node = todo.pop()
        if isinstance(node, str):
            room -= len(node)
        elif isinstance(node, list):
            todo.extend((indent, mode, k) for k in reversed(node))
        elif isinstance(node, Line):
            if mode == _BREAK:
                return True
            room -= 0 if node.soft else 1
        elif isinstance(node, Fresh):
            return not must_be_flat
        elif isinstance(node, Nest | Align):
            todo.append((indent, mode, node.body))
        elif isinstance(node, Group):
            if must_be_flat and node.hard:
                return False
            todo.append((indent, _BREAK if node.hard else mode, node.body))
        elif isinstance(node, Fill):
            if must_be_flat and node.hard:
                return False
            if node.start < len(node.items):
                todo.append((indent, mode, _Tail(node, node.start + 1)))
                todo.append((indent, mode, node.items[node.start]))
        elif node.index < len(node.fill.items):
            todo.append((indent, mode, _Tail(node.fill, node.index + 1)))
            todo.append((indent, mode, [node.fill.sep, node.fill.items[node.index]]))
    return False
