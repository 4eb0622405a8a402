"""`Model.summary()`: the per-scope rows, still a list, that print as a torchinfo-style table
(`str`, and HTML in Jupyter); `ssnc info` prints the same table."""

from __future__ import annotations

import io
import math

from rich.console import Console
from rich.table import Table

from .compiler.ir import Graph
from .compiler.ops import fmt_shape
from .compiler.stats import (
    ScopeRow,
    summarize,
    time_symbols,
    total_macs,
    total_params,
    weight_bytes,
)

WIDTH = 110
"""Characters per line of the text form (rich wraps the table to it)."""


class Summary(list[ScopeRow]):
    """Rows in first-appearance order (scopes deeper than ``max_depth`` summed into their
    ancestors), with the model's totals: trainable parameters, buffers (not trained) and
    multiply-accumulates per sample (per step for a sequence model)."""

    def __init__(self, graph: Graph, max_depth: int | None = None):
        super().__init__(summarize(graph, max_depth))
        self.model = graph.model
        self.input_type = graph.input_type
        self.timed = bool(time_symbols(graph))
        self.total_params = total_params(graph)
        self.buffers = sum(spec.numel for spec in graph.tensors().values() if not spec.trainable)
        self.weight_bytes = weight_bytes(graph)
        self.total_macs = total_macs(graph)
        self.outputs = [(graph.output_name(i), graph[o].shape or ())
                        for i, o in enumerate(graph.outputs)]
        self.named = bool(graph.output_names)
        self.generated = graph.generated()

    def table(self) -> Table:
        """The rows and totals as a rich table."""
        table = Table(title=f"{self.model} : {self.input_type}", title_justify="left")
        table.add_column("scope", no_wrap=True)
        table.add_column("op")
        table.add_column("output", no_wrap=True)
        table.add_column("params", justify="right")
        table.add_column("MACs/step" if self.timed else "MACs", justify="right")
        for row in self:
            leaf = row.path.rsplit(".", 1)[-1]
            table.add_row("  " * (row.depth - 1) + leaf, row.op or "", fmt_shape(row.shape),
                          f"{row.params:,}", f"{row.macs:,}")
        table.add_section()
        table.add_row("total", "", "", f"{self.total_params:,}", f"{self.total_macs:,}")
        return table

    def footer(self) -> list[str]:
        """The lines under the table: what the totals count, and the named outputs."""
        lines = [f"trainable parameters: {self.total_params:,}; buffers (not trained): "
                 f"{self.buffers:,}",
                 "weights: " + ", ".join(f"{_mib(b)} as {p}" for p, b in self.weight_bytes.items()
                                         if p != "bf16") + " or bf16"]
        if self.generated:
            n = len(self.generated)
            elements = sum(math.prod(int(d) for d in s) for s in self.generated.values())
            lines.append(f"generated weights (computed, not counted above): {n:,} "
                         f"tensor{'s' if n != 1 else ''}, {elements:,} values")
        if len(self.outputs) > 1 or self.named:
            lines.append("outputs: " + ", ".join(f"{name} {fmt_shape(shape)}"
                                                 for name, shape in self.outputs))
        return lines

    def _render(self) -> Console:
        console = Console(record=True, width=WIDTH, highlight=False, markup=False,
                          color_system=None, force_terminal=False, file=io.StringIO())
        console.print(self.table())
        for line in self.footer():
            console.print(line)
        return console

    def __str__(self) -> str:
        return self._render().export_text()

    def __repr__(self) -> str:
        """The table, as torchinfo and Keras show a summary at the prompt."""
        return str(self)

    def _repr_html_(self) -> str:
        return self._render().export_html(inline_styles=True)


def _mib(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB" if n >= 2**20 else f"{n / 2**10:,.1f} KiB"
