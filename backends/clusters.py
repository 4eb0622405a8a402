"""Which cluster a picture draws each scope in. Names nest as the spec's calls do, which is
not always how the network reads: a recursive rule whose next instance only hands its
results on (HM-RNN's layers, a stack written as a recursion) is a sequence of levels, drawn
one after another, not one inside another; a scope that only wraps one other (a rule whose
body is one call, a loop's rule around its loop) is one cluster with it, not two."""

from __future__ import annotations

from dataclasses import dataclass

from ..compiler.ir import Graph, Node, named_after

LEVEL = "@"
"""Joins a recursive rule's name to its level in a drawn segment (`hm_layer@2`)."""
MERGED = "/"
"""Joins the names of scopes drawn as one cluster in a drawn segment (`hmrnn/scan`)."""


@dataclass
class Clusters:
    """Where each scope is drawn: ``moves`` are name-prefix replacements applied in turn
    (levels, then merged wrappers); ``titles`` maps a drawn path to its cluster's title,
    ``levels`` a recursive rule's levels, in order, by drawn path."""

    moves: tuple[dict[str, str], ...]
    titles: dict[str, str]
    levels: list[tuple[str, str]]  # (a level, the next)

    def __call__(self, name: str) -> str:
        """Where the node or scope ``name`` is drawn."""
        for paths in self.moves:
            name = _moved(paths, name)
        return name


def _moved(paths: dict[str, str], name: str) -> str:
    """``name`` with its longest prefix in ``paths`` replaced."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        head = paths.get(".".join(parts[:i]))
        if head is not None:
            return ".".join([head, *parts[i:]])
    return name


def _parent(path: str) -> str:
    return path.rsplit(".", 1)[0] if "." in path else ""


def _last(path: str) -> str:
    return path.rsplit(".", 1)[-1]


def _scopes(names: list[str]) -> list[str]:
    """Every scope holding one of ``names``, outer scopes first."""
    return sorted({".".join(n.split(".")[:i]) for n in names for i in range(1, n.count(".") + 1)},
                  key=lambda p: p.count("."))


def drawn_scopes(walked: list[tuple[Graph, Node]], drawn: list[Node],
             named: dict[str, str]) -> Clusters:
    """The drawn paths of the scopes of the ``drawn`` nodes (``walked``: every node with its
    graph, for rules and reads; ``named``: a scope's title where not its name, as a loop's)."""
    rules: dict[str, str] = {}
    for holder, node in walked:
        chain = [s.rule for s in holder.scope_path(node.scope)[1:] if not s.transparent]
        parts = node.name.split(".")
        if len(chain) == len(parts) - 1 and all(  # not a fractal's column, a `let` name
                named_after(p, r) for p, r in zip(parts, chain, strict=False)):
            rules.update((".".join(parts[:i]), r) for i, r in enumerate(chain, 1))
    scopes = _scopes([n.name for n in drawn])
    levels = _levels(walked, scopes, rules)
    moved: dict[str, str] = {}
    titles: dict[str, str] = {}
    for scope in scopes:  # a level after the one above it, in that level's parent
        where = _moved(moved, scope)
        title = named.get(scope, _last(scope))
        if scope in levels:
            up = _moved(moved, _parent(scope))
            where = moved[scope] = (f"{_parent(up)}." if "." in up else "") \
                + f"{_last(scope)}{LEVEL}{levels[scope]}"
            if _parent(scope) not in levels and not titles[up].endswith(" (level 1)"):
                titles[up] += " (level 1)"
            title += f" (level {levels[scope]})"
        titles[where] = title
    columns = {_moved(moved, ".".join(parts[:parts.index(f"col{n.column}") + 1]))
               for n in drawn if n.column is not None
               and f"col{n.column}" in (parts := n.name.split("."))}
    merged = _merge_wrappers([_moved(moved, n.name) for n in drawn], titles, columns)
    return Clusters((moved, merged), {_moved(merged, p): t for p, t in titles.items()},
                    [(_moved(merged, _moved(moved, _parent(s))), _moved(merged, moved[s]))
                     for s in levels])


def _levels(walked: list[tuple[Graph, Node]], scopes: list[str],
            rules: dict[str, str]) -> dict[str, int]:
    """The scopes that are a recursive rule's next level, with their level (the first is
    1): an instance of the rule of the scope around it whose values nothing else in that
    scope reads."""
    read: set[str] = set()  # scopes whose values a node outside them, in their parent, reads
    for _, node in walked:
        reader = node.name.split(".")
        for src in (*node.inputs, *node.weights):
            parts = src.split(".")
            common = 0
            while common < min(len(parts), len(reader)) and parts[common] == reader[common]:
                common += 1
            if common + 1 < len(parts):
                read.add(".".join(parts[:common + 1]))
    levels: dict[str, int] = {}
    for scope in scopes:
        up = _parent(scope)
        if up and scope not in read and rules.get(scope) is not None \
                and rules.get(scope) == rules.get(up):
            levels[scope] = levels.get(up, 1) + 1
    return levels


def _merge_wrappers(names: list[str], titles: dict[str, str],
                    columns: set[str]) -> dict[str, str]:
    """Moves that draw a scope with no box of its own and one scope inside as one cluster
    with it (``names``: where each node is drawn); the merged cluster's title joins both.
    A fractal's column stays a column, drawn as its siblings are, even with one unit."""
    own = {_parent(n) for n in names} | columns
    inside: dict[str, list[str]] = {}
    for scope in _scopes(names):
        inside.setdefault(_parent(scope), []).append(scope)
    merged: dict[str, str] = {}
    for scope in _scopes(names):
        if scope in own or len(inside.get(scope, ())) != 1:
            continue
        outer = _moved(merged, scope)
        (only,) = inside[scope]
        merged[only] = f"{outer}{MERGED}{_last(only)}"
        titles[only] = f"{titles.get(scope, _last(scope))} · {titles.get(only, _last(only))}"
    return merged
