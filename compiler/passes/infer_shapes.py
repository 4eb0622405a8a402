"""infer_shapes: compute every node's output shape, dtype and parameter shapes.

Needs: named nodes in a DAG. Guarantees: every node, in bodies too, has ``shape``, ``dtype``,
``params`` and concrete attributes (`OpDecl.concrete`: no default left to work out);
every parameter node has the shape (and initializer) its first reader needs, and every later
reader (a ``shared`` instance) needs exactly that shape. A mismatch is a diagnostic
at the op's span with notes pointing at the producers of the inputs at fault."""

from __future__ import annotations

from ..ir import Graph
from ..shapes import infer_graph


def infer_shapes(graph: Graph) -> Graph:
    """Return the graph with shapes, dtypes, parameter specs and concrete attributes."""
    return infer_graph(graph, {}, graph.first_reader)
