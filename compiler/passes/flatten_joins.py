"""flatten_joins: merge joins that meet into one join.

Needs: a graph whose joins carry the ``merge`` attribute. Guarantees: no mergeable join reads
another join of the same kind and attributes that has no other reader; inputs keep their order
(the inner join's inputs take its place). For ``sum``, ``max`` and ``concat`` this is an exact
rewrite; for ``mean`` it is FractalNet's semantics: the joins of a fractal that meet are one
element-wise mean over all the columns that arrive there, not a mean of means."""

from __future__ import annotations

from ..ir import Graph, Node
from ..joins import merges, merging


def flatten_joins(graph: Graph) -> Graph:
    """Return the graph with every chain of meeting joins merged into its outermost join."""
    current: dict[str, Node] = {}
    merged: set[str] = set()
    for node in graph.order():
        if merging(node):
            inputs: list[str] = []
            for src in node.inputs:
                inner = current[src]
                if _mergeable(graph, node, inner):
                    inputs.extend(inner.inputs)
                    merged.add(src)
                else:
                    inputs.append(src)
            node = node.evolve(inputs=tuple(inputs)) if tuple(inputs) != node.inputs else node
        current[node.name] = node
    if not merged:
        return graph
    return graph.with_nodes(n for n in current.values() if n.name not in merged)


def _mergeable(graph: Graph, outer: Node, inner: Node) -> bool:
    return merges(outer, inner, len(graph.consumers(inner.name)), inner.name in graph.outputs)
