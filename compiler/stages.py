"""Pipeline stages: where a model's top level can be cut (exactly one tensor crosses, no
parameter is read on both sides), a balanced choice of cuts, and each stage as a graph of
its own whose input is the tensor that crosses. Backends lower a stage like a model."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .ir import Graph, Node, captures, make_node, walk
from .stats import macs, param_count


@dataclass(frozen=True)
class Cut:
    """A place to cut: after ``after`` (a node of the top level), whose value alone crosses."""

    position: int
    after: str


def cut_points(graph: Graph) -> list[Cut]:
    """Every place in the top level's order where exactly one value (not the input) crosses
    and no parameter is read on both sides; one sweep over the order."""
    order = [n for n in graph.order() if not n.is_param]
    where = {n.name: i for i, n in enumerate(order)}
    last: dict[str, int] = {}
    params: dict[str, tuple[int, int]] = {}  # first and last reader of each parameter
    for i, node in enumerate(order):
        reads = (*node.inputs, *(captures(node.body) if node.body is not None else ()))
        for name in reads:
            last[name] = i
        for w in (*node.weights, *reads):
            if w in graph.nodes_by_name and graph[w].is_param:
                params[w] = (params.get(w, (i, i))[0], i)
    for out in graph.outputs:
        last[out] = len(order)
    values, shared = _spans(len(order), ((where[n], e) for n, e in last.items() if n in where)), \
        _spans(len(order), params.values())
    return [Cut(i, node.name) for i, node in enumerate(order[:-1])
            if not node.is_input and node.body is None and not node.outputs
            and values[i] == 1 and last.get(node.name, i) > i and shared[i] == 0]


def _spans(size: int, spans: Iterable[tuple[int, int]]) -> list[int]:
    """For each gap after position i, how many ``(begin, end)`` spans cross it
    (begin <= i < end)."""
    delta = [0] * (size + 1)
    for begin, end in spans:
        if begin < end:
            delta[begin] += 1
            delta[end] -= 1
    return list(itertools.accumulate(delta))


def node_costs(graph: Graph, by: str) -> list[int]:
    """Each top-level node's cost: its MACs (its body's included, per step), its
    parameters, or its output's elements per sample (``by``: "macs", "params",
    "activations")."""
    def cost(node: Node) -> int:
        inner = [(graph, node), *(walk(node.body) if node.body is not None else ())]
        if by == "params":
            return sum(param_count(graph, n) for _, n in inner)
        if by == "activations":
            return math.prod(d for d in node.shape or () if isinstance(d, int))
        return sum(macs(holder, n) for holder, n in inner)
    return [cost(n) for n in graph.order() if not n.is_param]


def balance(costs: Sequence[int], cuts: Sequence[Cut], stages: int) -> list[Cut]:
    """The ``stages - 1`` cuts that make the costliest stage cheapest (exact, by dynamic
    programming over the cut points)."""
    prefix = [0]
    for c in costs:
        prefix.append(prefix[-1] + c)
    ends = [c.position + 1 for c in cuts] + [len(costs)]  # a stage ends after these

    def span(a: int, b: int) -> int:
        return prefix[b] - prefix[a]

    # best[s][j]: the cheapest worst stage covering [0, ends[j]) with s stages
    inf = float("inf")
    best = [[inf] * len(ends) for _ in range(stages + 1)]
    back = [[-1] * len(ends) for _ in range(stages + 1)]
    for j, e in enumerate(ends):
        best[1][j] = span(0, e)
    for s in range(2, stages + 1):
        for j, e in enumerate(ends):
            for i in range(j):
                worst = max(best[s - 1][i], span(ends[i], e))
                if worst < best[s][j]:
                    best[s][j], back[s][j] = worst, i
    chosen, j = [], len(ends) - 1
    for s in range(stages, 1, -1):
        j = back[s][j]
        chosen.append(cuts[j])
    return sorted(chosen, key=lambda c: c.position)


def stage_graph(graph: Graph, cuts: Sequence[Cut], index: int) -> Graph:
    """Stage ``index`` of the model cut at ``cuts``: its top-level nodes (and the parameters
    they read), reading the value the cut before it passes as its input `input`, and
    giving the value the cut after it passes (the model's outputs for the last stage)."""
    order = [n for n in graph.order() if not n.is_param]
    begin = cuts[index - 1].position + 1 if index else 0
    end = cuts[index].position + 1 if index < len(cuts) else len(order)
    inside = order[begin:end]
    nodes: list[Node] = []
    if index:
        before = graph[cuts[index - 1].after]
        source = next(n for n in order if n.is_input)
        nodes.append(make_node(name="input", op="input", attrs=dict(source.attrs), inputs=(),
                               scope=0, span=before.span, index=before.index,
                               shape=before.shape, dtype=before.dtype))
        rename = {before.name: "input"}
        inside = [n.evolve(inputs=tuple(rename.get(i, i) for i in n.inputs)) for n in inside]
    names = {n.name for n in inside}
    params = {w for n in inside for w in (*n.weights, *(
        captures(n.body) if n.body is not None else ()), *n.inputs)
        if w in graph.nodes_by_name and graph[w].is_param and w not in names}
    nodes += [graph[p] for p in sorted(params, key=lambda p: graph[p].index)]
    nodes += inside
    outputs = graph.outputs if index == len(cuts) else (cuts[index].after,)
    return graph.derive(nodes=sorted(nodes, key=lambda n: n.index),
                        inputs=("input",) if index else graph.inputs, outputs=outputs,
                        output_names=graph.output_names if index == len(cuts) else (),
                        input_names=(), labels={}, bindings=(), aliases={})
