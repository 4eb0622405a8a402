"""The regions of a graph: each non-transparent scope's nodes, the values that cross its
boundary, and its child regions (what `Graph.region` gives, computed once per graph)."""

from __future__ import annotations

from .ir import Graph, Node, Region, captures, walk


def build_regions(graph: Graph) -> dict[int, Region]:
    """Regions of every non-transparent scope that holds nodes (the root always)."""
    home: dict[int, int] = {}  # scope -> nearest non-transparent ancestor-or-self
    for sid, scope in sorted(graph.scopes.items()):
        parent = scope.parent
        home[sid] = home[parent] if scope.transparent and parent is not None else sid
    direct: dict[int, list[Node]] = {}
    for node in graph.order():
        if not node.is_source:
            direct.setdefault(home[node.scope], []).append(node)
    kids: dict[int, list[int]] = {}
    for sid, scope in sorted(graph.scopes.items()):
        if sid != 0 and home[sid] == sid and scope.parent is not None:
            kids.setdefault(home[scope.parent], []).append(sid)
    out: dict[int, Region] = {}

    def build(sid: int) -> Region:
        children = tuple(r for r in (build(c) for c in kids.get(sid, [])) if r.members)
        mine = tuple(direct.get(sid, []))
        members = tuple(sorted(mine + tuple(n for c in children for n in c.members),
                               key=lambda n: n.index))
        inside = {n.name for n in members}
        inputs: dict[str, None] = {}
        weights: dict[str, None] = {}
        every = graph.all_nodes()
        for n in members:
            inputs.update((i, None) for i in n.inputs if i not in inside)
            for w in n.weights:  # a generated weight made outside comes in as an input
                if every[w].is_param:
                    weights[w] = None
                elif w not in inside:
                    inputs[w] = None
            if n.body is not None:  # a body's reads cross the boundary with its node
                for _, inner in walk(n.body):
                    weights.update((w, None) for w in inner.weights if every[w].is_param)
                inputs.update((c, None) for c in captures(n.body)
                              if c not in inside and not every[c].is_param)
        outputs = tuple(graph.read_outside([n.name for n in members]))
        region = Region(graph.scopes[sid], mine, children, members, tuple(inputs),
                        tuple(weights), outputs, _common_prefix([n.name for n in members]))
        out[sid] = region
        return region

    build(0)
    return out


def _common_prefix(names: list[str]) -> str:
    if not names:
        return ""
    parts = [n.split(".") for n in names]
    common: list[str] = []
    for segs in zip(*parts, strict=False):
        if len(set(segs)) != 1:
            break
        common.append(segs[0])
    if len(common) == min(len(p) for p in parts):
        common = common[:-1]  # keep at least the last segment of every name
    return ".".join(common)
