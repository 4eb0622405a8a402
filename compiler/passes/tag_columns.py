"""tag_columns: find fractal blocks and give each node its column and position.

Needs: joins flattened. Guarantees: every node inside a fractal block has ``fractal`` (the
block's scope id); its other nodes have ``column`` (1 = shallowest) and ``position`` (1-based
index of its base instance along that column); each fractal join has ``input_columns`` and its
``depth`` along the deepest column.

A fractal block is the outermost instance of a rule that recurses (a scope with a descendant
scope of the same rule) and contains a join made by such recursive scopes. The columns are
read off the structure, not the rule's text: a fractal join over k inputs takes the deepest k
of the block's C columns (C = the widest join), and its inputs are ranked by the longest path
from the block's entry (deeper column, longer path). A node's column is the column of the join
input its output flows into."""

from __future__ import annotations

from collections import defaultdict

from ..ir import Graph, Node, Scope, owned
from ..ops import OPS


def tag_columns(graph: Graph) -> Graph:
    """Return the graph with fractal, column, position and input_columns filled in."""
    nodes_in: dict[int, list[Node]] = defaultdict(list)
    for node in graph.order():
        nodes_in[node.scope].append(node)

    blocks = _fractal_blocks(graph, nodes_in)
    block_of = {sid: block for block in blocks for sid in graph.subtree(block)}
    members: dict[int, list[Node]] = {block: [] for block in blocks}
    for node in graph.order():  # one sweep: a `param` value is in the column that reads it
        block = block_of.get(node.scope)
        if block is not None and (not node.is_source or (node.is_param and not owned(node))):
            members[block].append(node)
    updates: dict[str, Node] = {}
    for block in blocks:
        updates.update(_tag_block(graph, block, members[block]))
    if not updates:
        return graph
    return graph.with_nodes(updates.get(n.name, n) for n in graph.nodes_by_name.values())


def structural_scopes(graph: Graph, block: int) -> set[int]:
    """Scopes of rules that recurse inside ``block``: the fractal's own levels. The instance
    of a block argument (a transparent scope, such as the base) is content: a fractal used
    as the base of a fractal keeps its joins inside the outer columns."""
    sub, stack = [], [block]  # a block argument's instance is content, not structure
    while stack:
        sid = stack.pop()
        sub.append(sid)
        stack.extend(c for c in reversed(graph.scope_children(sid))
                     if not graph.scopes[c].transparent)
    recursive: set[str] = set()
    for sid in sub:
        s = graph.scopes[sid]
        parent = s.parent
        while parent is not None and parent != graph.scopes[block].parent:
            if graph.scopes[parent].rule == s.rule:
                recursive.add(s.rule)
                break
            parent = graph.scopes[parent].parent
    return {sid for sid in sub if graph.scopes[sid].rule in recursive}


def _fractal_blocks(graph: Graph, nodes_in: dict[int, list[Node]]) -> list[int]:
    blocks: list[int] = []
    depth = _depths(graph)

    todo = [0]  # scopes in preorder (a stack, not a recursive closure: that is a cycle
    while todo:  # holding the graph until the collector runs)
        sid = todo.pop()
        if sid != 0 and _recurses(graph, graph.scopes[sid]):
            structural = structural_scopes(graph, sid)
            joins = [n for s in structural for n in nodes_in[s] if OPS[n.op].is_join]
            if joins and _columns(graph, min(joins, key=lambda n: n.index), depth):
                blocks.append(sid)
                continue
        todo.extend(reversed(graph.scope_children(sid)))
    return blocks


def _columns(graph: Graph, join: Node, depth: dict[str, int]) -> bool:
    """Whether ``join`` joins parallel columns: no input is computed from another (a U-Net
    level's concat of a skip and what was computed from it is recursion, not a fractal), and
    the columns differ in depth (a tree's two halves, equally deep, are recursion too)."""
    inputs = set(join.inputs)
    if len(inputs) < 2:
        return True
    if len({depth[i] for i in inputs}) == 1:
        return False
    floor = min(depth[i] for i in inputs)  # below it no node is, or leads from, an input
    seen: set[str] = set()
    for start in inputs:
        stack = list(graph.sources(graph[start]))
        while stack:
            name = stack.pop()
            if name in inputs:
                return False
            if name not in seen and depth[name] > floor:
                seen.add(name)
                stack.extend(graph.sources(graph[name]))
        seen.clear()
    return True


def _depths(graph: Graph) -> dict[str, int]:
    """Each node's longest path from a source, in one sweep of the order."""
    depth: dict[str, int] = {}
    of, sources = depth.__getitem__, graph.sources
    for node in graph.order():
        depth[node.name] = 1 + max(map(of, sources(node)), default=-1)
    return depth


def _recurses(graph: Graph, scope: Scope) -> bool:
    return any(graph.scopes[s].rule == scope.rule for s in graph.subtree(scope.id)[1:])


def _member_columns(graph: Graph, members: list[Node], inside: set[str],
             slot_columns: dict[str, tuple[int, ...]]) -> dict[str, int | None]:
    """Each non-join member's column: that of the join input it feeds (through the members
    after it), None where it feeds no join of the block."""
    column: dict[str, int | None] = {}
    for n in reversed(members):
        if n.name in slot_columns:
            continue
        found: int | None = None
        for consumer, port in graph.consumers(n.name):
            if consumer in slot_columns:
                found = slot_columns[consumer][port]
            elif consumer in inside:
                found = column.get(consumer)
            if found is not None:
                break
        column[n.name] = found
    return column


def _member_positions(graph: Graph, members: list[Node], column: dict[str, int | None], block: int,
               structural: set[int]) -> dict[str, int]:
    """Each member's 1-based position along its column: the instances of the base block, in
    order, one position each."""
    positions: dict[tuple[int, tuple[str, int | str]], int] = {}
    count: dict[int, int] = defaultdict(int)  # instances met so far along each column
    position: dict[str, int] = {}
    memo: BaseMemo = {}
    for n in members:
        c = column.get(n.name)
        if c is None:
            continue
        key = (c, base_key(graph, n, block, structural, memo))
        if key not in positions:
            count[c] += 1
            positions[key] = count[c]
        position[n.name] = positions[key]
    return position


def _tag_block(graph: Graph, block: int, members: list[Node]) -> dict[str, Node]:
    """The tagged ``members`` of fractal ``block`` (its nodes, in order), by name."""
    structural = structural_scopes(graph, block)
    inside = {n.name for n in members}
    joins = [n for n in members if OPS[n.op].is_join and n.scope in structural]
    width = max(len(j.inputs) for j in joins)

    longest: dict[str, int] = {}
    for n in members:
        longest[n.name] = 1 + max((longest[i] for i in n.inputs if i in inside), default=0)

    slot_columns: dict[str, tuple[int, ...]] = {}
    for j in joins:
        # an input from outside the block (an identity base) has the shortest path: 0
        ranked = sorted(range(len(j.inputs)), key=lambda p: (-longest.get(j.inputs[p], 0), p))
        ports = [0] * len(j.inputs)
        for rank, port in enumerate(ranked):
            ports[port] = width - rank
        slot_columns[j.name] = tuple(ports)

    join_names = set(slot_columns)
    column = _member_columns(graph, members, inside, slot_columns)

    position = _member_positions(graph, members, column, block, structural)
    out: dict[str, Node] = {}
    for n in members:
        if n.name in join_names:
            cols = slot_columns[n.name]
            deepest = n.inputs[cols.index(width)]
            out[n.name] = n.evolve(fractal=block, input_columns=cols,
                                   depth=position.get(deepest))
        else:
            out[n.name] = n.evolve(fractal=block, column=column.get(n.name),
                                   position=position.get(n.name))
    # a join fed by the deepest column's join (nested, unmerged) takes that join's depth
    for n in members:
        if n.name in join_names and out[n.name].depth is None:
            deepest = n.inputs[slot_columns[n.name].index(width)]
            if deepest in out:
                out[n.name] = out[n.name].evolve(depth=out[deepest].depth)
    return out


BaseMemo = dict[tuple[int, int], int | None]


def base_key(graph: Graph, node: Node, block: int, structural: set[int],
             memo: BaseMemo | None = None) -> tuple[str, int | str]:
    """The base instance a node belongs to: the first non-structural scope below the last
    structural one on its path, or the node itself when a structural scope made it.
    ``memo`` keeps the answer for each scope (the nodes of one scope share it)."""
    key = (node.scope, block)
    if memo is not None and key in memo:
        base = memo[key]
    else:
        base = _base_scope(graph, node.scope, block, structural)
        if memo is not None:
            memo[key] = base
    return ("node", node.name) if base is None else ("scope", base)


def _base_scope(graph: Graph, scope: int, block: int, structural: set[int]) -> int | None:
    """`base_key`'s scope, for the nodes of ``scope`` (None: each node is its own base)."""
    chain = [s.id for s in graph.scope_path(scope)]
    chain = chain[chain.index(block):]
    last = max(i for i, s in enumerate(chain) if s in structural or s == block)
    if last + 1 >= len(chain):
        return None
    base = chain[last + 1]
    if graph.scopes[base].transparent and last + 2 < len(chain) \
            and graph.scope_children(base) == (chain[last + 2],):
        base = chain[last + 2]  # a rule call passed as the base: named by its rule
    return base
