"""extract_column: the single-column subnetwork of every fractal block.

Needs: columns tagged and names assigned. Guarantees: every fractal join is replaced by its
input from column ``k`` and every node (or parameter) that no longer reaches an output is
removed, and so is an output that reads
another column (a column's classifier head, a tap inside it); names
(and so state_dict keys) are unchanged, so a trained full model's weights load into it.
Column 1 is the shallowest; the deepest column alone is FractalNet's plain deep net, the fast
"anytime" answer the paper describes."""

from __future__ import annotations

from ...base.diagnostics import E_OPTION, error
from ...base.options import option_span, spell
from ..ir import Graph, upstream


def extract_column(graph: Graph, k: int) -> Graph:
    """Return the graph with every fractal reduced to its column ``k``."""
    widths = {block: f.width for block, f in graph.fractals().items()}
    where = option_span("column", str(k))
    if not widths:
        raise error(E_OPTION, f"model `{graph.model}` has no fractal blocks, so no column {k}",
                    where, hint=f"{spell('column')} applies to models built from fractals")
    narrowest = min(widths.values())
    if not 1 <= k <= narrowest:
        raise error(E_OPTION, f"column {k} does not exist: the fractal blocks of "
                    f"`{graph.model}` have {narrowest} column{'s' if narrowest != 1 else ''}"
                    + ("" if len(set(widths.values())) == 1 else " or more"), where,
                    hint=f"choose a column from 1 (shallowest) to {narrowest} (deepest)")
    replaced: dict[str, str] = {}
    for node in graph.order():
        if node.input_columns and node.fractal is not None and k in node.input_columns:
            src = node.inputs[node.input_columns.index(k)]
            replaced[node.name] = replaced.get(src, src)

    def resolve(name: str) -> str:
        return replaced.get(name, name)

    rewired = {n.name: n.evolve(inputs=tuple(resolve(i) for i in n.inputs))
               for n in graph.nodes_by_name.values() if n.name not in replaced}
    foreign = {n.name for n in graph.nodes_by_name.values()
               if n.fractal is not None and n.column is not None and n.column != k}
    names: list[str | None] = [*graph.output_names] or [None] * len(graph.outputs)
    kept: list[tuple[str, str | None]] = []
    live: set[str] = set(graph.inputs)
    for output, name in zip((resolve(o) for o in graph.outputs), names, strict=True):
        reached = upstream(rewired, [output], live)
        if reached & foreign:  # an output that reads another column (a head, a tap) goes
            continue
        live |= reached
        kept.append((output, name))
    if not kept:
        raise error(E_OPTION, f"column {k} computes none of the outputs of `{graph.model}`",
                    where, hint="every output reads another column")
    result = graph.with_nodes([n for n in rewired.values() if n.name in live],
                              [o for o, _ in kept])
    if not graph.output_names:
        return result
    return result.with_outputs([o for o, _ in kept], [str(n) for _, n in kept])

