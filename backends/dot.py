"""Graphviz backend: the IR as a picture. Scopes are nested clusters; ``depth`` collapses
every scope deeper than that many name segments into one box with its op count, parameters
and output shape, so a 40-layer fractal can be read at the level of its blocks."""

from __future__ import annotations

import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

from ..compiler.diagnostics import E_OUTPUT, Span, error
from ..compiler.ir import Graph, Node, named_after
from ..compiler.ops import OPS, fmt_shape
from ..compiler.printer import shown_attrs

RENDERED = (".svg", ".png", ".pdf")


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


def to_dot(graph: Graph, depth: int | None = None) -> str:
    """DOT text for ``graph``; scopes deeper than ``depth`` segments become single boxes."""
    order = [n for n in graph.order() if n.op != "param"]  # weights show as counts

    def box(node: Node) -> str:
        parts = node.name.split(".")
        if depth is not None and len(parts) > depth and node.op != "input":
            return ".".join(parts[:depth])
        return node.name

    members: dict[str, list[Node]] = defaultdict(list)
    for node in order:
        members[box(node)].append(node)

    lines = [f"digraph {_q(graph.model)} {{", "  rankdir=TB;", "  compound=true;",
             '  node [shape=box, style="rounded,filled", fillcolor="#f7f7f7", '
             'fontname="Helvetica", fontsize=10];',
             '  edge [color="#555555", arrowsize=0.6];']
    clusters: dict[str, list[str]] = defaultdict(list)  # parent prefix -> boxes directly in it
    for key, nodes in members.items():
        parent = key.rsplit(".", 1)[0] if "." in key else ""
        if len(nodes) == 1 and nodes[0].name == key:
            decl = f"{_q(key)} [label={_q(_label(nodes[0]))}"
            if OPS.get(nodes[0].op) is not None and OPS[nodes[0].op].is_join:
                decl += ', shape=ellipse, fillcolor="#fde7c8"'
            clusters[parent].append(decl + "];")
        else:
            params = sum(graph.param_count(n) for n in nodes)
            label = (f"{key.rsplit('.', 1)[-1]}\\n{len(nodes)} ops, {params:,} params\\n"
                     f"{fmt_shape(nodes[-1].shape or ())}")
            clusters[parent].append(f'{_q(key)} [label={_q(label)}, fillcolor="#dbe9f6"];')

    def emit(prefix: str, indent: str) -> None:
        lines.extend(indent + decl for decl in clusters.get(prefix, []))
        children = sorted({p for p in clusters if p and (p.rsplit(".", 1)[0] == prefix
                                                         if "." in p else not prefix)},
                          key=lambda p: min(n.index for k, ns in members.items()
                                            if k == p or k.startswith(p + ".") for n in ns))
        for child in children:
            lines.append(f"{indent}subgraph {_q('cluster_' + child)} {{")
            lines.append(f"{indent}  label={_q(child.rsplit('.', 1)[-1])}; style=rounded; "
                         'color="#9aa7b1"; fontname="Helvetica"; fontsize=10;')
            emit(child, indent + "  ")
            lines.append(f"{indent}}}")

    for prefix in list(clusters):  # every enclosing prefix needs a cluster to nest in
        parts = prefix.split(".") if prefix else []
        for i in range(1, len(parts)):
            clusters.setdefault(".".join(parts[:i]), [])
    emit("", "  ")
    seen: set[tuple[str, str]] = set()
    for node in order:
        for src in node.inputs:
            edge = (box(graph[src]), box(node))
            if edge[0] != edge[1] and edge not in seen:
                seen.add(edge)
                lines.append(f"  {_q(edge[0])} -> {_q(edge[1])};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(dot_text: str, out: Path, tmp: Path) -> None:
    """Write ``dot_text`` to ``tmp``: as is for .dot, rendered by Graphviz for .svg/.png/.pdf."""
    if out.suffix not in RENDERED:
        tmp.write_text(dot_text, encoding="utf-8")
        return
    exe = shutil.which("dot")
    if exe is None:
        raise error(E_OUTPUT, f"cannot render {out}: Graphviz's `dot` is not installed",
                    Span.unknown(str(out)), hint="write a .dot file instead, or install "
                    "Graphviz (Debian: apt-get install graphviz)")
    proc = subprocess.run([exe, f"-T{out.suffix[1:]}", "-o", str(tmp)], input=dot_text,
                          capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise error(E_OUTPUT, f"Graphviz could not render {out}: {proc.stderr.strip()[:300]}",
                    Span.unknown(str(out)))
