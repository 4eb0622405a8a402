"""assign_names: give every node its readable, stable scope path.

Needs: columns tagged. Guarantees: unique dotted names built from rule and op names
(`stage2.fractal.col3.unit2.conv`), identical from run to run. A segment gets a 1-based
number when siblings share its name (`mlpconv1`, `mlpconv2`); inside a fractal block the
recursion levels are replaced by `col{c}` and base instances are numbered by their position
along the column (always, so `col1.unit1` lines up with `col3.unit1`); a fractal's joins are
`join1`, `join2`, ... in order of depth. A text that ends in a digit gets `_` before its
number (`conv3x3_1`, not `conv3x31`). No name is a prefix path of another.

Before 0.2 the `_` was not there; the graph's ``aliases`` map those old names to the new ones,
so checkpoints saved then still load (see CHANGELOG.md). A transparent
scope (one instance of a block argument) adds no segment, except as a fractal's base instance,
where it is named by its parameter (`fractal.col3.base2.conv` for `fractal(3, conv >> relu)`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ...base.diagnostics import E_DUPLICATE, Note, error
from ..ir import Graph, Node, numbered_name, owned, walk
from .tag_columns import BaseMemo, base_key, structural_scopes

# A raw segment: (text, identity, numbering). Identities tell apart siblings with one text;
# numbering is True (numbered among siblings that share the text, when there are several),
# False (never) or a fixed number (a base instance's rank along its column).
_Segment = tuple[str, object, bool | int]


def assign_names(graph: Graph) -> Graph:
    """Return the graph with final names (inputs, outputs and edges renamed to match)."""
    structural: dict[int, set[int]] = {}
    order = [n for _, n in walk(graph) if not owned(n)]  # bodies' nodes too
    join_rank: dict[str, int] = {}
    for f in sorted({n.fractal for n in order if n.fractal is not None}):
        structural[f] = structural_scopes(graph, f)
    for fractal in graph.fractals().values():
        join_rank.update((name, rank) for rank, name in enumerate(fractal.joins, 1))

    base_rank = _base_ranks(graph, order, structural)
    memo = _Scopes()
    raw = {n.name: _raw_path(graph, n, join_rank, base_rank, memo) for n in order}
    for name, given in zip(graph.inputs, graph.input_names, strict=False):
        raw[name] = [(given, ("node", name), False)]  # an input keeps the spec's name
    final, at, prefix, before = _segments(raw)
    scopes = {parent for parent, _ in prefix}  # the prefixes that have a segment after them
    names = _unique({old: ".".join(p) for old, p in final.items()}, final,
                    {old for old in final if at[old] in scopes})
    _check_input_names(graph, names)
    params = [n for n in graph.all_nodes().values() if owned(n)]
    tables = [names]
    differs = bool(before)  # whether any name was different before 0.2
    if differs:
        legacy = {old: [before.get(old, {}).get(level, segment)
                        for level, segment in enumerate(path)] for old, path in final.items()}
        old_names = _unique({old: ".".join(p) for old, p in legacy.items()}, legacy)
        tables.append(old_names)
    for table in tables:  # a parameter is named by its first reader and its port
        table.update((n.name, f"{table[graph.first_reader(n.name).name]}.{n.attrs['role']}")
                     for n in params)
    aliases = ({old_names[k]: names[k] for k in names if old_names[k] != names[k]}
               if differs else {})
    rename = names.__getitem__
    renamed = graph.map_nodes(lambda n: n.evolve(
        name=names[n.name], inputs=tuple(map(rename, n.inputs)),
        weights=tuple(map(rename, n.weights))), names)
    return renamed.derive(aliases=aliases)


def _segments(raw: dict[str, list[_Segment]]) -> tuple[
        dict[str, list[str]], dict[str, int], dict[tuple[int, str], int],
        dict[str, dict[int, str]]]:
    """Each node's final segments, level by level: a segment is numbered among the siblings
    under one prefix that share its text. Also each node's path as a prefix id, the
    prefixes ((parent's id, segment) -> id) and the segments that differed before 0.2."""
    return _segments_by_tree(raw) or _segments_by_level(raw)


def _segments_by_tree(raw: dict[str, list[_Segment]]) -> tuple[
        dict[str, list[str]], dict[str, int], dict[tuple[int, str], int],
        dict[str, dict[int, str]]] | None:
    """`_segments` over the tree of raw paths, each distinct prefix worked out once (nodes
    share their scopes' prefixes); None where two raw prefixes would get one final name,
    which merges their subtrees, as only the level-by-level walk handles."""
    # raw prefix id -> its children by raw segment (and the numbering's type: True == 1)
    kids: list[dict[tuple[_Segment, type], int]] = [{}]
    leaf: list[int] = []
    for path in raw.values():
        at = 0
        for step in path:
            key = (step, type(step[2]))
            child = kids[at].get(key)
            if child is None:
                child = kids[at][key] = len(kids)
                kids.append({})
            at = child
        leaf.append(at)
    full: list[list[str]] = [[] for _ in kids]  # each prefix's final segments
    legacy: list[dict[int, str] | None] = [None] * len(kids)
    prefix: dict[tuple[int, str], int] = {}
    for parent, children in enumerate(kids):  # a parent's id is below its children's
        idents: dict[str, dict[object, int]] = {}  # text -> identities, first seen first
        for (text, ident, numbered), _ in children:
            group = idents.setdefault(text, {})
            if numbered is True and ident not in group:
                group[ident] = len(group) + 1
        level = len(full[parent])
        for ((text, ident, numbered), _), child in children.items():
            group = idents[text]
            number = (numbered if numbered is not True else
                      group[ident] if len(group) > 1 else None) or None
            segment = text if number is None else numbered_name(text, number)
            if prefix.setdefault((parent, segment), child) != child:
                return None  # two raw prefixes, one name
            full[child] = [*full[parent], segment]
            legacy[child] = legacy[parent]
            if number is not None and text[-1:].isdigit():
                legacy[child] = {**(legacy[parent] or {}),
                                 level: numbered_name(text, number, legacy=True)}
    keys = list(raw)
    before = {k: old for k, i in zip(keys, leaf, strict=True)
              if (old := legacy[i]) is not None}
    return ({k: full[i] for k, i in zip(keys, leaf, strict=True)},
            dict(zip(keys, leaf, strict=True)), prefix, before)


def _segments_by_level(raw: dict[str, list[_Segment]]) -> tuple[
        dict[str, list[str]], dict[str, int], dict[tuple[int, str], int],
        dict[str, dict[int, str]]]:
    """`_segments`, level by level over every node: what the tree cannot do."""
    keys = list(raw)  # the nodes by position: lists, not dicts keyed by name, in the loop
    paths = list(raw.values())
    final: list[list[str]] = [[] for _ in keys]
    at = [0] * len(keys)  # each node's final path so far, as its prefix's id
    prefix: dict[tuple[int, str], int] = {}  # (parent's prefix, segment) -> a prefix's id
    before: dict[str, dict[int, str]] = {}
    active = list(range(len(keys)))
    for level in range(max(map(len, paths), default=0)):
        active = [i for i in active if level < len(paths[i])]
        # siblings' identities in order of first appearance -> their 1-based numbers
        groups: dict[tuple[int, str], dict[object, int]] = {}
        seen = []
        for i in active:
            text, ident, numbered = paths[i][level]
            idents = groups.get((at[i], text))
            if idents is None:
                idents = groups[(at[i], text)] = {}
            if numbered is True and ident not in idents:
                idents[ident] = len(idents) + 1
            seen.append((i, text, ident, numbered, idents))
        for i, text, ident, numbered, idents in seen:
            number = (numbered if numbered is not True else
                      idents[ident] if len(idents) > 1 else None) or None
            segment = text if number is None else numbered_name(text, number)
            final[i].append(segment)
            if number is not None and text[-1:].isdigit():
                before.setdefault(keys[i], {})[level] = numbered_name(text, number, legacy=True)
            at[i] = prefix.setdefault((at[i], segment), len(prefix) + 1)
    return dict(zip(keys, final, strict=True)), dict(zip(keys, at, strict=True)), prefix, before


def _unique(names: dict[str, str], final: dict[str, list[str]],
            clashing: set[str] | None = None) -> dict[str, str]:
    """``names``, with a node named like a scope renamed `NAME_out`, so both stay
    addressable; ``clashing``, where known, names those nodes (none: the common case, and
    then the scopes' names are not spelled out)."""
    if clashing is not None and not clashing:
        return names
    taken = set(names.values())
    prefixes: set[str] = set()
    for path in final.values():  # every scope's name: each proper prefix of a path
        joined = path[0] if path else ""
        for segment in path[1:]:
            prefixes.add(joined)
            joined = f"{joined}.{segment}"
    for old, new in names.items():
        if new in prefixes:  # a node named like a scope: keep both addressable
            candidate = new + "_out"
            while candidate in taken or candidate in prefixes:
                candidate += "_"
            names[old] = candidate
            taken.add(candidate)
    return names


def _check_input_names(graph: Graph, names: dict[str, str]) -> None:
    """An input named in the spec must not share its name with a node or scope of the model
    (its state_dict keys and ONNX values would collide)."""
    given = dict(zip(graph.inputs, graph.input_names, strict=False))
    for old, new in names.items():
        for inp, name in given.items():
            if old != inp and (new == name or new.startswith(name + ".")):
                node = graph.all_nodes()[old]
                raise error(E_DUPLICATE, f"the input `{name}` has the name of a part of the "
                            f"model (`{new}`)", graph[inp].span,
                            notes=[Note(f"`{new}` is made here", node.span)],
                            hint="give the input another name")


_Rank = tuple[str, int, tuple[str, int | str]]


def _base_ranks(graph: Graph, order: list[Node],
                structural: dict[int, set[int]]) -> dict[str, _Rank]:
    """For each node in a fractal column: its base instance's label, 1-based index among
    the instances with that label along the column (`unit4`, `pool1`), and key."""
    seen: dict[tuple[int, int, str], dict[object, int]] = {}
    out: dict[str, _Rank] = {}
    memo: BaseMemo = {}
    for node in order:
        if node.fractal is None or node.column is None:
            continue
        key = base_key(graph, node, node.fractal, structural[node.fractal], memo)
        label = graph.scopes[int(key[1])].rule if key[0] == "scope" else node.op
        keys = seen.setdefault((node.fractal, node.column, label), {})
        out[node.name] = (label, keys.setdefault(key, len(keys) + 1), key)
    return out


@dataclass
class _Scopes:
    """The scopes' part of raw paths, worked out once per scope: down to a fractal
    ((scope, fractal) -> segments, and whether the fractal was reached), and below a base
    instance ((scope, base) -> segments)."""

    heads: dict[tuple[int, int | None], tuple[tuple[_Segment, ...], bool]] = field(
        default_factory=dict)
    below: dict[tuple[int, int], tuple[_Segment, ...]] = field(default_factory=dict)


def _raw_path(graph: Graph, node: Node, join_rank: dict[str, int],
              base_rank: dict[str, _Rank], scopes: _Scopes) -> list[_Segment]:
    """``node``'s raw segments: its scopes' (down to its fractal, if it is in one), then its
    fractal tail or its op. The scopes' part is worked out once per scope."""
    key = (node.scope, node.fractal)
    found = scopes.heads.get(key)
    if found is None:
        path: list[_Segment] = []
        reached = False
        for scope in graph.scope_path(node.scope)[1:]:  # the root is the model itself
            if not scope.transparent:
                path.append((scope.rule, ("scope", scope.id), True))
            if scope.id == node.fractal:
                reached = True
                break
        found = scopes.heads[key] = (tuple(path), reached)
    head, reached = found
    if reached:
        return [*head, *_fractal_tail(graph, node, join_rank, base_rank, scopes)]
    return [*head, (node.op, ("node", node.name), True)]


def _fractal_tail(graph: Graph, node: Node, join_rank: dict[str, int],
                  base_rank: dict[str, _Rank], scopes: _Scopes) -> list[_Segment]:
    if node.name in join_rank:
        return [(f"join{join_rank[node.name]}", ("node", node.name), False)]
    if node.column is None or node.position is None:
        return [(node.op, ("node", node.name), True)]
    path: list[_Segment] = [(f"col{node.column}", ("col", node.column), False)]
    label, rank, key = base_rank[node.name]
    if key[0] == "node":
        return [*path, (label, ("node", node.name), rank)]
    base = int(key[1])
    path.append((label, ("base", node.column, label, rank), rank))
    rest = scopes.below.get((node.scope, base))
    if rest is None:
        chain = graph.scope_path(node.scope)
        below = chain[[s.id for s in chain].index(base) + 1:]
        rest = scopes.below[(node.scope, base)] = tuple(
            (s.rule, ("scope", s.id), True) for s in below if not s.transparent)
    return [*path, *rest, (node.op, ("node", node.name), True)]
