"""Drop-path's plan for one graph, worked out once from the IR's fractal facts
(`Graph.fractals()`): which joins drop-path acts on and their order, the fractal blocks and
their widths (the runtime's `DROP_JOINS` and `FRACTAL_WIDTHS`), which values feed only one
input of a column join (computed only when that input is kept), and whether each column join
is needed at all given a batch's draw."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ...compiler.ir import Graph, Node
from ..pysource import comment, literal
from .lower import drop_rate, droppable


@dataclass(frozen=True)
class DropPlan:
    """Joins drop-path acts on (in order: join `j` reads ``keep[j]`` and ``masks[j]``), the
    fractal blocks they belong to (in order of their first such join) with their widths, and
    ``segment``: for a node inside a fractal, the (join, port) it alone feeds."""

    joins: tuple[Node, ...]
    index: Mapping[str, int]
    blocks: tuple[int, ...]
    widths: tuple[int, ...]
    segment: Mapping[str, tuple[int, int]]

    @staticmethod
    def of(graph: Graph, order: Sequence[Node]) -> DropPlan:
        """The plan of ``graph`` (its computing nodes in ``order``)."""
        joins = tuple(n for n in order if droppable(n))
        index = {n.name: j for j, n in enumerate(joins)}
        first: dict[int, int] = {}
        for n in joins:
            if n.fractal is not None:
                first.setdefault(n.fractal, n.index)
        columned = {n.fractal for n in joins if n.input_columns and n.fractal is not None}
        blocks = tuple(sorted((b for b in graph.fractals() if b in columned),
                              key=first.__getitem__))
        plan = DropPlan(joins, index, blocks, tuple(graph.fractals()[b].width for b in blocks),
                        {})
        return DropPlan(joins, index, blocks, plan.widths, plan._segments(graph, order))

    def column_join(self, node: Node) -> bool:
        """A join of a fractal's columns that drop-path acts on."""
        return node.name in self.index and bool(node.input_columns)

    def _segments(self, graph: Graph, order: Sequence[Node]) -> dict[str, tuple[int, int]]:
        """For nodes inside fractals: the column join input (join, port) they feed, where
        that is all they feed (a value also read elsewhere, an output or a tap, is always
        computed)."""
        seg: dict[str, tuple[int, int]] = {}
        for node in reversed(order):
            if node.fractal is None or self.column_join(node) or node.name in graph.outputs:
                continue
            feeds: set[tuple[int, int] | None] = set()
            for consumer, port in graph.consumers(node.name):
                if self.column_join(graph[consumer]):
                    feeds.add((self.index[consumer], port))
                else:
                    feeds.add(seg.get(consumer))
            only = feeds.pop() if len(feeds) == 1 else None
            if only is not None:
                seg[node.name] = only
        return seg

    def need_flags(self, graph: Graph) -> list[tuple[int, str]]:
        """``(j, expression)``: whether column join j's output is used, given this batch's
        keep flags, later joins first (a flag reads only later joins' flags)."""
        flags: list[tuple[int, str]] = []
        for node in reversed(self.joins):
            if not self.column_join(node):
                continue
            terms: list[str] = []
            for consumer, port in graph.consumers(node.name):
                if self.column_join(graph[consumer]):
                    jc, p = self.index[consumer], port
                    term = f"(need{jc} and keep[{jc}][{p}])"
                elif consumer in self.segment:
                    jc, p = self.segment[consumer]
                    term = f"(need{jc} and keep[{jc}][{p}])"
                else:
                    term = "True"
                if term not in terms:
                    terms.append(term)
            if node.name in graph.outputs:
                terms.append("True")
            expr = "True" if "True" in terms or not terms else " or ".join(terms)
            flags.append((self.index[node.name], expr))
        return flags

    def table(self) -> str:
        """The `DROP_JOINS` class attribute: (block, input columns, rate) per join."""
        rows = []
        for n in self.joins:
            block = (self.blocks.index(n.fractal) if n.input_columns and n.fractal in self.blocks
                     else -1)
            cols = n.input_columns if n.input_columns else (0,) * len(n.inputs)
            rows.append(f"        ({block}, {literal(tuple(c or 0 for c in cols))}, "
                        f"{literal(drop_rate(n))}),  {comment(n.name)}")
        return "(\n" + "\n".join(rows) + "\n    )" if rows else "()"
