"""Graphviz backend: the IR as a picture. Scopes are nested clusters; ``depth`` collapses
every scope deeper than that many name segments into one box with its op count, parameters
and output shape, so a 40-layer fractal can be read at the level of its blocks."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..compiler.diagnostics import E_OUTPUT, Span, error
from ..compiler.ir import Graph, Node, named_after
from ..compiler.ops import OPS, fmt_shape
from ..compiler.printer import shown_attrs

RENDERED = ("svg", "png", "pdf")
"""The formats Graphviz renders from DOT."""


def _q(text: str) -> str:
    """A DOT string; labels keep their `\\n` line breaks."""
    return '"' + text.replace('"', '\\"') + '"'


def _label(node: Node) -> str:
    if node.op == "input":
        return f"input\\n{fmt_shape(node.shape or ())}"
    op = OPS[node.op]
    shown = shown_attrs(node)
    title = node.op + (f" ×{len(node.inputs)}" if op.arity is None else "")
    leaf = node.name.rsplit(".", 1)[-1]
    head = title if named_after(leaf, node.op) else f"{leaf}: {title}"
    detail = f"\\n{', '.join(shown)}" if shown else ""
    return f"{head}{detail}\\n{fmt_shape(node.shape or ())}"


@dataclass
class Picture:
    """What a drawing shows, whatever draws it: boxes (an op, a join, or a collapsed scope
    with its op count), the scope clusters they sit in, and the edges between boxes."""

    graph: Graph
    order: list[Node]  # the drawn nodes (weights show as counts)
    box: Callable[[Node], str]  # the box a node is drawn in
    members: dict[str, list[Node]]
    clusters: dict[str, list[str]]  # cluster prefix ("" for the top) -> its boxes
    edges: list[tuple[str, str]]

    def kind(self, key: str) -> str:
        """"op", "join" or "scope" (a collapsed box)."""
        nodes = self.members[key]
        if len(nodes) == 1 and nodes[0].name == key:
            op = OPS.get(nodes[0].op)
            return "join" if op is not None and op.is_join else "op"
        return "scope"

    def label(self, key: str) -> str:
        """The box's text, lines separated by ``\\n``."""
        nodes = self.members[key]
        if self.kind(key) != "scope":
            return _label(nodes[0])
        params = sum(self.graph.param_count(n) for n in nodes)
        return (f"{key.rsplit('.', 1)[-1]}\\n{len(nodes)} ops, {params:,} params\\n"
                f"{fmt_shape(nodes[-1].shape or ())}")

    def children(self, prefix: str) -> list[str]:
        """The clusters directly inside ``prefix``, in drawing order."""
        return sorted({p for p in self.clusters if p and (p.rsplit(".", 1)[0] == prefix
                                                          if "." in p else not prefix)},
                      key=lambda p: _cluster_order(p, self.members))


def picture(graph: Graph, depth: int | None = None) -> Picture:
    """The boxes, clusters and edges of ``graph``, scopes deeper than ``depth`` collapsed."""
    order = [n for n in graph.order() if n.op != "param"]
    blocks: dict[int, list[str]] = {}  # fractal -> its scope path
    for node in order:
        parts = node.name.split(".")
        if node.fractal is not None and f"col{node.column}" in parts:
            blocks.setdefault(node.fractal, parts[:parts.index(f"col{node.column}")])

    def box(node: Node) -> str:
        parts = node.name.split(".")
        if depth is None or node.op == "input":
            return node.name
        block = blocks.get(node.fractal) if node.fractal is not None else None
        if block is not None and len(block) <= depth <= len(block) + 1:
            return ".".join(block)  # a column alone would read join -> column -> join
        return ".".join(parts[:depth]) if len(parts) > depth else node.name

    members: dict[str, list[Node]] = defaultdict(list)
    for node in order:
        members[box(node)].append(node)
    clusters: dict[str, list[str]] = defaultdict(list)
    for key in members:
        clusters[key.rsplit(".", 1)[0] if "." in key else ""].append(key)
    for prefix in list(clusters):  # every enclosing prefix needs a cluster to nest in
        parts = prefix.split(".") if prefix else []
        for i in range(1, len(parts)):
            clusters.setdefault(".".join(parts[:i]), [])
    edges: dict[tuple[str, str], None] = {}
    for node in order:
        for src in node.inputs:
            edge = (box(graph[src]), box(node))
            if edge[0] != edge[1]:
                edges[edge] = None
    return Picture(graph, order, box, members, clusters, list(edges))


def to_dot(graph: Graph, depth: int | None = None) -> str:
    """DOT text for ``graph``; scopes deeper than ``depth`` segments become single boxes."""
    pic = picture(graph, depth)
    lines = [f"digraph {_q(graph.model)} {{", "  rankdir=TB;", "  compound=true;",
             "  newrank=true;",
             '  node [shape=box, style="rounded,filled", fillcolor="#f7f7f7", '
             'fontname="Helvetica", fontsize=10];',
             '  edge [color="#555555", arrowsize=0.6];']
    style = {"op": "", "join": ', shape=ellipse, fillcolor="#fde7c8"',
             "scope": ', fillcolor="#dbe9f6"'}
    anchors, order_lines = _column_anchors(pic)

    def emit(prefix: str, indent: str) -> None:
        lines.extend(f"{indent}{_q(key)} [label={_q(pic.label(key))}{style[pic.kind(key)]}];"
                     for key in pic.clusters.get(prefix, []))
        for child in pic.children(prefix):
            lines.append(f"{indent}subgraph {_q('cluster_' + child)} {{")
            lines.append(f"{indent}  label={_q(child.rsplit('.', 1)[-1])}; style=rounded; "
                         'color="#9aa7b1"; fontname="Helvetica"; fontsize=10;')
            if child in anchors:  # a column: its invisible top, which orders the columns
                lines.append(f"{indent}  {_q(anchors[child])} [style=invis, shape=point, "
                             "width=0, height=0, label=\"\"];")
            emit(child, indent + "  ")
            lines.append(f"{indent}}}")

    emit("", "  ")
    lines.extend(_fractal_ranks(pic))
    lines.extend(order_lines)
    lines.extend(f"  {_q(tail)} -> {_q(head)};" for tail, head in pic.edges)
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_mermaid(graph: Graph, depth: int | None = None) -> str:
    """Mermaid flowchart text for ``graph`` (for Markdown), collapsed as ``to_dot`` is:
    scopes as subgraphs, boxes labelled with their op, attributes and shape."""
    pic = picture(graph, depth)
    ids: dict[str, str] = {}

    def ident(key: str) -> str:
        return ids.setdefault(key, f"n{len(ids)}")

    def text(label: str) -> str:
        escaped = "".join(f"#{ord(ch)};" if ch in '"#<>&' else ch
                          for ch in label.replace("\\n", "\n"))
        return escaped.replace("\n", "<br/>")

    shape = {"op": ('["', '"]'), "join": ('(["', '"])'), "scope": ('[["', '"]]')}
    lines = [f"%% {graph.model}: drawn by ssnc graph", "flowchart TD"]

    def emit(prefix: str, indent: str) -> None:
        for key in pic.clusters.get(prefix, []):
            left, right = shape[pic.kind(key)]
            lines.append(f"{indent}{ident(key)}{left}{text(pic.label(key))}{right}")
        for child in pic.children(prefix):
            lines.append(f'{indent}subgraph {ident("cluster " + child)}'
                         f'["{text(child.rsplit(".", 1)[-1])}"]')
            emit(child, indent + "  ")
            lines.append(f"{indent}end")

    emit("", "  ")
    lines.extend(f"  {ident(tail)} --> {ident(head)}" for tail, head in pic.edges)
    return "\n".join(lines) + "\n"


def _cluster_order(prefix: str, members: dict[str, list[Node]]) -> tuple[int, int]:
    """Sibling clusters in order of creation, except a fractal's columns, by number: with
    the column tops, that keeps the columns in one order at every depth (Graphviz draws
    them deepest first, from the left)."""
    column = re.fullmatch(r"col(\d+)", prefix.rsplit(".", 1)[-1])
    if column is not None:
        return (0, int(column.group(1)))
    return (1, min(n.index for k, ns in members.items()
                   if k == prefix or k.startswith(prefix + ".") for n in ns))


def _column_anchors(pic: Picture) -> tuple[dict[str, str], list[str]]:
    """An invisible node at the top of each drawn column cluster, the tops of one fractal
    in one rank: every column starts at the block's top, as in the paper's Figure 1, and
    the columns keep one order all the way down."""
    anchors: dict[str, str] = {}
    tops: dict[int, list[tuple[int, str]]] = defaultdict(list)
    lines = []
    for node in pic.order:
        if node.fractal is None or node.column is None:
            continue
        name = pic.box(node)
        parts = node.name.split(".")
        if f"col{node.column}" not in parts:
            continue
        prefix = ".".join(parts[:parts.index(f"col{node.column}") + 1])
        if not (name == prefix or name.startswith(prefix + ".")) or prefix in anchors:
            continue  # collapsed above the column, or seen
        anchors[prefix] = f"{prefix}.__top"
        tops[node.fractal].append((node.column, anchors[prefix]))
        lines.append(f"  {_q(anchors[prefix])} -> {_q(name)} [style=invis];")
        pic.clusters.setdefault(prefix, [])
    for columns in tops.values():
        names = [n for _, n in sorted(columns)]
        if len(names) > 1:
            lines.append("  { rank=same; " + " ".join(_q(n) + ";" for n in names) + " }")
    return anchors, lines


def _fractal_ranks(pic: Picture) -> list[str]:
    """FractalNet's Figure 1: inside each fractal, units level by depth. A unit of column
    c at position p ends at depth p·2^(C−c), so the k-th op of every unit ending at depth d
    shares a rank; a join sits at its depth, below the units it closes."""
    fractals = pic.graph.fractals()
    box = pic.box
    step: dict[tuple[int, int, int], int] = defaultdict(int)  # unit -> ops seen so far
    ranks: dict[tuple[int, int, int], dict[str, None]] = defaultdict(dict)  # ordered sets
    for node in pic.order:
        b = node.fractal
        if b is None or b not in fractals:
            continue
        if node.depth is not None and node.column is None:  # a column join
            ranks[(b, node.depth, 1 << 20)][box(node)] = None
        elif node.column is not None and node.position is not None:
            level = node.position << (fractals[b].width - node.column)
            k = step[(b, node.column, node.position)]
            step[(b, node.column, node.position)] += 1
            ranks[(b, level, k)][box(node)] = None
    return ["  { rank=same; " + " ".join(_q(n) + ";" for n in names) + " }"
            for names in ranks.values() if len(names) > 1]


def render(text: str, kind: str, out: Path, tmp: Path) -> None:
    """Write the picture ``out`` (``kind`` "dot", "mermaid", "svg", "png" or "pdf") into
    ``tmp``: text as it is, or rendered from DOT by Graphviz."""
    if kind not in RENDERED:
        tmp.write_text(text, encoding="utf-8")
        return
    exe = shutil.which("dot")
    if exe is None:
        raise error(E_OUTPUT, f"cannot render {out}: Graphviz's `dot` is not installed",
                    Span.unknown(str(out)), hint="write a .dot file instead, or install "
                    "Graphviz (Debian: apt-get install graphviz)")
    proc = subprocess.run([exe, f"-T{kind}", "-o", str(tmp)], input=text,
                          capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise error(E_OUTPUT, f"Graphviz could not render {out}: {proc.stderr.strip()[:300]}",
                    Span.unknown(str(out)))
