"""`Model.summary()`: the per-scope rows, still a list, that print as a torchinfo-style table
(`str`, and HTML in Jupyter); `ssnc info` prints the same table, and `ssnc info --memory`
the memory estimate's."""

from __future__ import annotations

import io
import math

from rich.console import Console
from rich.table import Table

from .compiler.ir import Graph
from .compiler.memory import Memory
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


def _size(n: int) -> str:
    """Bytes in the largest unit that keeps a digit before the point."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n:,} B"


def memory_table(memory: Memory, train: bool) -> Table:
    """The per-scope bytes: weights and activations written (inference), or weights,
    gradients, optimizer state and activations kept for backward (``train``)."""
    timed = f", {memory.steps} steps" if memory.steps is not None else ""
    table = Table(title=f"{memory.model}: memory at batch {memory.batch}{timed}, "
                  f"{memory.precision}", title_justify="left")
    table.add_column("scope", no_wrap=True)
    heads = (("weights", "gradients", f"{memory.optimizer} state", "kept for backward")
             if train else ("weights", "activations written"))
    for head in heads:
        table.add_column(head, justify="right")
    for row in memory.rows:
        figures = ((row.weights, row.gradients, row.optimizer, row.kept) if train
                   else (row.weights, row.written))
        table.add_row("  " * (row.depth - 1) + row.path.rsplit(".", 1)[-1],
                      *(_size(f) for f in figures))
    table.add_section()
    totals = ((memory.weights, memory.gradients, memory.optimizer_state, memory.kept)
              if train else (memory.weights, sum(r.written for r in memory.rows
                                                 if r.depth == 1)))
    table.add_row("total", *(_size(f) for f in totals))
    return table


def memory_footer(memory: Memory, train: bool) -> list[str]:
    """The peak and what makes it up, and what drop-path changes."""
    if not train:
        return [f"inference peak: {_size(memory.inference_peak)} = weights "
                f"{_size(memory.weights)} + inputs {_size(memory.inputs)} + the activations "
                f"alive at once {_size(memory.inference_peak - memory.weights - memory.inputs)}"]
    parts = "".join(f" + {what} {_size(size)}" for what, size in memory.parts)
    lines = [f"training step peak on {memory.device}, in the {memory.phase}: "
             f"{_size(memory.training_peak)} = weights {_size(memory.weights)} + "
             f"{memory.optimizer} state {_size(memory.optimizer_state)} + inputs "
             f"{_size(memory.inputs)}{parts}"]
    if memory.global_peak is not None:
        lines.append(f"drop-path: that peak is a local draw's that keeps every path; a global "
                     f"draw computes one column, at most {_size(memory.global_peak)} (column "
                     f"{memory.global_column})")
    return lines
