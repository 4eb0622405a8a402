"""Graphviz backend: the IR as a picture. Scopes are nested clusters (drawn as
``clusters`` places them); ``depth`` collapses every cluster nested deeper than that into
one box with its op count, parameters and output shape, so a 40-layer fractal can be read
at the level of its blocks."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..base.diagnostics import E_OUTPUT, Span, error
from ..compiler.ir import Graph, Node, named_after, owned, walk
from ..compiler.ops import OPS, AttrValue, fmt_shape
from ..compiler.printer import format_value, shown_attrs
from ..compiler.stats import loop_label, loop_plumbing, param_count
from .clusters import MERGED, Clusters, drawn_scopes

RENDERED = ("svg", "png", "pdf")
"""The formats Graphviz renders from DOT."""


def _q(text: str) -> str:
    """A DOT string; labels keep their `\\n` line breaks."""
    return '"' + text.replace('"', '\\"') + '"'


def _short(value: AttrValue) -> str:
    """An attribute as a picture shows it: as the IR prints it, but a number that six
    significant digits do not hold exactly rounded to them (0.6 ** 3 as 0.216, not
    0.21599999999999997)."""
    if isinstance(value, float) and float(f"{value:.6g}") != value:
        return f"{value:.6g}"
    return format_value(value)


def _label(node: Node) -> str:
    if node.is_input:
        return f"input\\n{fmt_shape(node.shape or (), roles=False)}"
    op = OPS[node.op]
    shown = shown_attrs(node, _short)
    title = node.op + (f" ×{len(node.inputs)}" if op.arity is None else "")
    leaf = node.name.rsplit(".", 1)[-1]
    head = title if named_after(leaf, node.op) else f"{leaf}: {title}"
    detail = f"\\n{', '.join(shown)}" if shown else ""
    return f"{head}{detail}\\n{fmt_shape(node.shape or (), roles=False)}"


@dataclass
class Picture:
    """What a drawing shows, whatever draws it: boxes (an op, a join, a loop cell's input,
    or a collapsed scope with its op count), the scope clusters they sit in (``drawn``: where
    each scope is drawn; a loop's titled with what it iterates), and the edges between boxes:
    data, and a loop's state carried from the cell's output back to its input (``back``: box
    pair -> the state's name)."""

    graph: Graph
    order: list[Node]  # the drawn nodes (weights show as counts)
    box: Callable[[Node], str]  # the box a node is drawn in
    drawn: Clusters
    members: dict[str, list[Node]]
    clusters: dict[str, list[str]]  # cluster path ("" for the top) -> its boxes
    edges: list[tuple[str, str]]
    back: dict[tuple[str, str], str]
    cell_inputs: dict[str, str]  # a loop cell's input box -> what it is (step input, state)

    def kind(self, key: str) -> str:
        """"op", "join", "cell input" or "scope" (a collapsed box)."""
        nodes = self.members[key]
        if len(nodes) == 1 and self.drawn(nodes[0].name) == key:
            if key in self.cell_inputs:
                return "cell input"
            op = OPS.get(nodes[0].op)
            return "join" if op is not None and op.is_join else "op"
        return "scope"

    def title(self, prefix: str) -> str:
        """A cluster's (or a collapsed scope's) title."""
        return self.drawn.titles.get(prefix, prefix.rsplit(".", 1)[-1])

    def label(self, key: str) -> str:
        """The box's text, lines separated by ``\\n``."""
        nodes = self.members[key]
        if self.kind(key) == "cell input":
            return f"{self.cell_inputs[key]}\\n{fmt_shape(nodes[0].shape or (), roles=False)}"
        if self.kind(key) != "scope":
            return _label(nodes[0])
        params = sum(param_count(self.graph, n) for n in nodes)
        return (f"{self.title(key)}\\n{len(nodes)} ops, {params:,} params\\n"
                f"{fmt_shape(nodes[-1].shape or (), roles=False)}")

    def children(self, prefix: str) -> list[str]:
        """The clusters directly inside ``prefix``, in drawing order."""
        return sorted({p for p in self.clusters if p and (p.rsplit(".", 1)[0] == prefix
                                                          if "." in p else not prefix)},
                      key=lambda p: _cluster_order(p, self.members))


def picture(graph: Graph, depth: int | None = None) -> Picture:
    """The boxes, clusters and edges of ``graph``, scopes deeper than ``depth`` collapsed; a
    loop drawn with its cell inside it, its plumbing (loop node, initial states, output
    projections) folded away."""
    folded = loop_plumbing(graph)
    walked = list(walk(graph))
    order = [n for _, n in walked  # a `param` value is a box
             if not owned(n) and n.name not in folded]
    drawn = drawn_scopes(walked, order, {loop.name.rsplit(".", 1)[0]: loop_label(graph, loop)
                                     for loop in folded.values() if "." in loop.name})
    blocks: dict[int, list[str]] = {}  # fractal -> its drawn scope path
    for node in order:
        parts = drawn(node.name).split(".")
        at = _column_at(parts, node)
        if at is not None and node.fractal is not None:
            blocks.setdefault(node.fractal, parts[:at])

    def box(node: Node) -> str:
        parts = drawn(node.name).split(".")
        if depth is None or node.name in graph.inputs:
            return ".".join(parts)
        block = blocks.get(node.fractal) if node.fractal is not None else None
        if block is not None and len(block) <= depth <= len(block) + 1:
            return ".".join(block)  # a column alone would read join -> column -> join
        return ".".join(parts[:depth])

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
    edges, back, cell_inputs = _edges(graph, order, box, folded)
    return Picture(graph, order, box, drawn, members, clusters, edges, back, cell_inputs)


def _column_at(parts: list[str], node: Node) -> int | None:
    """Where a fractal's column is in a node's drawn path, if it is in one."""
    return next((i for i, p in enumerate(parts)
                 if node.column is not None and p.split(MERGED)[0] == f"col{node.column}"), None)


def _edges(graph: Graph, order: list[Node], box: Callable[[Node], str],
           folded: dict[str, Node]) -> tuple[list[tuple[str, str]], dict[tuple[str, str], str],
                                             dict[str, str]]:
    """The data edges between boxes (a loop's output read from its cell's output, its
    sequence into its cell's step input), the state back-edges and what each cell input's
    box is."""
    every = graph.all_nodes()
    edges: dict[tuple[str, str], None] = {}
    back: dict[tuple[str, str], str] = {}
    cell_inputs: dict[str, str] = {}

    def source(name: str) -> Node | None:
        """The drawn node a value comes from: a loop's output is its cell's."""
        loop = folded.get(name)
        if loop is None:
            return every[name]
        if OPS[every[name].op].initial_state or loop.body is None:
            return None  # an initial state: part of the loop
        return every[loop.body.outputs[int(every[name].attrs["index"])]]  # type: ignore[arg-type]

    for node in order:  # a weight given to an op (generated, a `param`) is an edge too
        for src in (*node.inputs, *(w for w in node.weights if not owned(every[w]))):
            tail = source(src)
            if tail is not None and box(tail) != box(node):
                edges[(box(tail), box(node))] = None
    for loop in {id(n): n for n in folded.values()}.values():
        assert loop.body is not None
        step, *states = loop.body.inputs
        cell_inputs[box(every[step])] = "step input"
        edges.setdefault((box(every[loop.inputs[0]]), box(every[step])), None)
        for k, (state, new) in enumerate(zip(states, loop.body.outputs[1:], strict=True), 1):
            cell_inputs[box(every[state])] = f"state {k}"
            if box(every[new]) != box(every[state]):
                back[(box(every[new]), box(every[state]))] = f"state {k}"
    return list(edges), back, cell_inputs


def legible_depth(graph: Graph, max_boxes: int = 60) -> int | None:
    """The deepest collapsing (None: none) that draws ``graph`` in at most ``max_boxes``
    boxes, for pictures nobody chose a depth for (Jupyter, the gallery)."""
    deepest = max((k.count(".") + 1 for k in picture(graph).members), default=1)
    depths: list[int | None] = [None, *range(deepest, 0, -1)]
    for depth in depths:
        if len(picture(graph, depth).members) <= max_boxes:
            return depth
    return 1


def to_dot(graph: Graph, depth: int | None = None) -> str:
    """DOT text for ``graph``; scopes deeper than ``depth`` segments become single boxes."""
    pic = picture(graph, depth)
    lines = [f"digraph {_q(graph.model)} {{", "  rankdir=TB;", "  compound=true;",
             "  newrank=true;",
             '  node [shape=box, style="rounded,filled", fillcolor="#f7f7f7", '
             'fontname="Helvetica", fontsize=10];',
             '  edge [color="#555555", arrowsize=0.6];']
    style = {"op": "", "join": ', shape=ellipse, fillcolor="#fde7c8"',
             "scope": ', fillcolor="#dbe9f6"',
             "cell input": ', shape=ellipse, fillcolor="#e3f1e3"'}
    anchors, order_lines = _column_anchors(pic)

    def emit(prefix: str, indent: str) -> None:
        lines.extend(f"{indent}{_q(key)} [label={_q(pic.label(key))}{style[pic.kind(key)]}];"
                     for key in pic.clusters.get(prefix, []))
        for child in pic.children(prefix):
            lines.append(f"{indent}subgraph {_q('cluster_' + child)} {{")
            lines.append(f"{indent}  label={_q(pic.title(child))}; style=rounded; "
                         'color="#9aa7b1"; fontname="Helvetica"; fontsize=10;')
            if child in anchors:  # a column: its invisible top, which orders the columns
                lines.append(f"{indent}  {_q(anchors[child])} [style=invis, shape=point, "
                             "width=0, height=0, label=\"\"];")
            emit(child, indent + "  ")
            lines.append(f"{indent}}}")

    emit("", "  ")
    lines.extend(_fractal_ranks(pic))
    lines.extend(_levels_stacked(pic))
    lines.extend(order_lines)
    lines.extend(f"  {_q(tail)} -> {_q(head)};" for tail, head in pic.edges)
    lines.extend(f"  {_q(tail)} -> {_q(head)} [style=dashed, constraint=false, "
                 f'color="#2e7d32", fontcolor="#2e7d32", fontsize=9, label={_q(state)}];'
                 for (tail, head), state in pic.back.items())
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

    shape = {"op": ('["', '"]'), "join": ('(["', '"])'), "scope": ('[["', '"]]'),
             "cell input": ('(("', '"))')}
    lines = [f"%% {graph.model}: drawn by ssnc graph", "flowchart TD"]

    def emit(prefix: str, indent: str) -> None:
        for key in pic.clusters.get(prefix, []):
            left, right = shape[pic.kind(key)]
            lines.append(f"{indent}{ident(key)}{left}{text(pic.label(key))}{right}")
        for child in pic.children(prefix):
            lines.append(f'{indent}subgraph {ident("cluster " + child)}'
                         f'["{text(pic.title(child))}"]')
            emit(child, indent + "  ")
            lines.append(f"{indent}end")

    emit("", "  ")
    lines.extend(f"  {ident(tail)} --> {ident(head)}" for tail, head in pic.edges)
    lines.extend(f"  {ident(tail)} -. {text(state)} .-> {ident(head)}"
                 for (tail, head), state in pic.back.items())
    return "\n".join(lines) + "\n"


def _cluster_order(prefix: str, members: dict[str, list[Node]]) -> tuple[int, int]:
    """Sibling clusters in order of creation, except a fractal's columns, by number: with
    the column tops, that keeps the columns in one order at every depth (Graphviz draws
    them deepest first, from the left)."""
    column = re.fullmatch(r"col(\d+)", prefix.rsplit(".", 1)[-1].split(MERGED)[0])
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
        parts = pic.drawn(node.name).split(".")
        at = _column_at(parts, node)
        if at is None:
            continue
        prefix = ".".join(parts[:at + 1])
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


def _levels_stacked(pic: Picture) -> list[str]:
    """Invisible edges that put each level of a recursive rule below the one before (HM-RNN's
    layers, as the paper's Figure 1 draws them): from every box that ends a level to every
    box that starts the next. Dot would otherwise rank a level's ops that read only loop
    states beside the first level's."""
    lines: list[str] = []
    for upper, lower in pic.drawn.levels:
        if upper not in pic.clusters or lower not in pic.clusters:
            continue  # collapsed: the data between them orders them
        ends = [k for k in pic.members if k.startswith(upper + ".") and not any(
            t == k and h.startswith(upper + ".") for t, h in pic.edges)]
        starts = [k for k in pic.members if k.startswith(lower + ".") and not any(
            h == k and t.startswith(lower + ".") for t, h in pic.edges)]
        lines.extend(f"  {_q(end)} -> {_q(start)} [style=invis];"
                     for end in ends for start in starts)
    return lines


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
    ``tmp``: text as it is, or laid out (``layout``) and drawn by Graphviz."""
    if kind not in RENDERED:
        tmp.write_text(text, encoding="utf-8")
        return
    _graphviz("neato", [*_PINNED, f"-T{kind}", "-o", str(tmp)], layout(text, out), out)


_PINNED = ["-n2", "-Gsplines=true"]
"""neato drawing a laid-out graph: positions kept, the edges left without a route drawn."""


def svg(text: str) -> str:
    """The SVG picture of DOT ``text``, laid out as ``render`` does."""
    return _graphviz("neato", [*_PINNED, "-Tsvg"], layout(text), "the picture")


def layout(text: str, out: Path | str = "the picture") -> str:
    """DOT laid out by Graphviz's dot, then adjusted, with every position fixed for
    ``neato -n2`` to draw:

    - dot puts a fractal's columns deepest-first from the left (the mirror image crosses
      no less, and it breaks the tie that way); the picture is then mirrored left-right,
      so that columns read col1 ... colC, as in the paper's Figure 1;
    - when the top-level scopes and ops form a chain, they are stacked down the page and
      centred on one axis: dot starts each fractal block beside the end of the one before,
      a staircase. Edges between them are drawn again."""
    data = json.loads(_graphviz("dot", ["-Tjson"], text, out))
    objects: list[dict[str, Any]] = data.get("objects", [])
    clusters = {o["name"]: o for o in objects if str(o.get("name", "")).startswith("cluster_")}
    nodes = [o for o in objects if "pos" in o]
    x1, _, x2, _ = (float(v) for v in data["bb"].split(","))
    if _columns_reversed(nodes):
        _shift(data, lambda x, y: (x1 + x2 - x, y), whole=True)
    _straighten(data, clusters, nodes)
    return _to_dot(data, clusters, nodes)


def _columns_reversed(nodes: list[dict[str, Any]]) -> bool:
    """Whether most fractals came out with their columns deepest-first."""
    tops: dict[str, dict[int, float]] = defaultdict(dict)
    for node in nodes:
        m = re.fullmatch(r"(.+)\.col(\d+)(?:/[^.]*)?\.__top", node["name"])
        if m is not None:
            tops[m.group(1)][int(m.group(2))] = float(node["pos"].split(",")[0])
    votes = 0
    for columns in tops.values():
        xs = [columns[c] for c in sorted(columns)]
        votes += (xs == sorted(xs, reverse=True)) - (xs == sorted(xs))
    return votes > 0


_Move = Callable[[float, float], tuple[float, float]]


def _shift(item: dict[str, Any], move: _Move, whole: bool = False) -> None:
    """Apply ``move`` to every point of a laid-out object (with ``whole``, of the graph and
    everything in it)."""
    def point(text: str) -> str:
        *prefix, x, y = text.split(",")
        nx, ny = move(float(x), float(y))
        return ",".join([*prefix, _num(nx), _num(ny)])

    everything = [*item.get("objects", []), *item.get("edges", [])] if whole else []
    for obj in [item, *everything]:
        for key in ("pos", "lp", "xlp", "head_lp", "tail_lp"):
            if key in obj:
                obj[key] = " ".join(point(p) for p in obj[key].split())
        if "bb" in obj:
            a, b, c, d = (float(v) for v in obj["bb"].split(","))
            (x1, y1), (x2, y2) = move(a, b), move(c, d)
            obj["bb"] = ",".join(_num(v) for v in (min(x1, x2), min(y1, y2), max(x1, x2),
                                                   max(y1, y2)))


_GAP = 36.0
"""Points between stacked top-level items (dot's default rank separation)."""


def _parents(clusters: dict[str, Any]) -> dict[str, str | None]:
    """Each cluster's innermost enclosing cluster (None at the top), by name: the clusters
    of `stage1.fractal` sit inside those of `stage1`."""
    parents: dict[str, str | None] = {}
    for name in clusters:
        parts = name.split(".")
        parents[name] = next((".".join(parts[:i]) for i in range(len(parts) - 1, 0, -1)
                              if ".".join(parts[:i]) in clusters), None)
    return parents


def _top(name: str, parents: dict[str, str | None]) -> str:
    """The top-level cluster holding cluster ``name``."""
    while (up := parents[name]) is not None:
        name = up
    return name


def _straighten(data: dict[str, Any], clusters: dict[str, dict[str, Any]],
                nodes: list[dict[str, Any]]) -> None:
    """When the top-level scopes and ops form a chain (each feeds only the next), stack
    them down the page centred on one axis, each keeping its own layout; the edges between
    them lose their route (neato draws them straight)."""
    parents = _parents(clusters)
    tops = [name for name, up in parents.items() if up is None]
    owner: dict[int, str] = {}  # node id -> the top-level item holding it
    items: dict[str, tuple[float, float, float, float]] = {}
    for name in tops:
        for gvid in clusters[name].get("nodes", []):
            owner.setdefault(gvid, name)
        a, b, c, d = (float(v) for v in clusters[name]["bb"].split(","))
        items[name] = (a, b, c, d)
    for node in nodes:
        if node["_gvid"] not in owner:
            key = "node:" + node["name"]
            owner[node["_gvid"]] = key
            x, y = (float(v) for v in node["pos"].split(",")[:2])
            w, h = float(node.get("width", 0)) * 36, float(node.get("height", 0)) * 36
            items[key] = (x - w, y - h, x + w, y + h)
    chain = _chain(items, [(owner[e["tail"]], owner[e["head"]])
                           for e in data.get("edges", [])])
    if chain is None:
        return
    axis = max((r[2] - r[0], (r[0] + r[2]) / 2) for r in items.values())[1]
    top = max(r[3] for r in items.values())
    moves: dict[str, tuple[float, float]] = {}
    for name in chain:
        x1, y1, x2, y2 = items[name]
        moves[name] = (axis - (x1 + x2) / 2, top - y2)
        top -= (y2 - y1) + _GAP

    def by(name: str) -> _Move:
        dx, dy = moves[name]
        return lambda x, y: (x + dx, y + dy)

    for name, sub in clusters.items():
        _shift(sub, by(_top(name, parents)))
    for node in nodes:
        _shift(node, by(owner[node["_gvid"]]))
    for edge in data.get("edges", []):
        tail, head = owner[edge["tail"]], owner[edge["head"]]
        if tail == head:
            _shift(edge, by(tail))
        else:
            for key in ("pos", "lp", "head_lp", "tail_lp"):
                edge.pop(key, None)
    placed = [(x1 + moves[n][0], y1 + moves[n][1], x2 + moves[n][0], y2 + moves[n][1])
              for n, (x1, y1, x2, y2) in items.items()]
    data["bb"] = ",".join(_num(v) for v in (min(0.0, *(p[0] for p in placed)) - 4,
                                            min(p[1] for p in placed) - 4,
                                            max(p[2] for p in placed) + 4,
                                            max(p[3] for p in placed) + 4))


def _chain(items: dict[str, tuple[float, float, float, float]],
           edges: list[tuple[str, str]]) -> list[str] | None:
    """The items in order, if the edges between them make one path through all of them."""
    succ: dict[str, set[str]] = defaultdict(set)
    pred: dict[str, set[str]] = defaultdict(set)
    for tail, head in edges:
        if tail != head:
            succ[tail].add(head)
            pred[head].add(tail)
    starts = [n for n in items if not pred[n]]
    if len(items) < 2 or len(starts) != 1:
        return None
    order = [starts[0]]
    while succ[order[-1]]:
        if len(succ[order[-1]]) != 1:
            return None
        (following,) = succ[order[-1]]
        if pred[following] != {order[-1]} or following in order:
            return None
        order.append(following)
    return order if len(order) == len(items) else None


_INTERNAL = {"_gvid", "_draw_", "_ldraw_", "_hdraw_", "_tdraw_", "_hldraw_", "_tldraw_",
             "nodes", "edges", "subgraphs", "objects", "name", "directed", "strict",
             "_subgraph_cnt", "tail", "head", "xdotversion"}


def _attrs(obj: dict[str, Any]) -> str:
    return ", ".join(f'{k}="{_dot_escape(str(v))}"' for k, v in obj.items()
                     if k not in _INTERNAL)


def _dot_escape(value: str) -> str:
    return value.replace('"', '\\"')


def _to_dot(data: dict[str, Any], clusters: dict[str, dict[str, Any]],
            nodes: list[dict[str, Any]]) -> str:
    """The laid-out graph as DOT again, clusters nested by name, positions pinned."""
    by_id = {n["_gvid"]: n for n in nodes}
    lines = [f"digraph {_q(data['name'])} {{", f"  graph [{_attrs(data)}];",
             "  node [pin=true];"]
    placed: set[int] = set()
    parents = _parents(clusters)

    def emit(name: str, indent: str) -> None:
        c = clusters[name]
        lines.append(f"{indent}subgraph {_q(name)} {{")
        lines.append(f"{indent}  graph [{_attrs(c)}];")
        for child in sorted(k for k, up in parents.items() if up == name):
            emit(child, indent + "  ")
        for gvid in c.get("nodes", []):
            if gvid not in placed:
                placed.add(gvid)
                lines.append(f"{indent}  {_q(by_id[gvid]['name'])} [{_attrs(by_id[gvid])}];")
        lines.append(f"{indent}}}")

    for name in sorted(k for k, up in parents.items() if up is None):
        emit(name, "  ")
    lines.extend(f"  {_q(n['name'])} [{_attrs(n)}];" for n in nodes if n["_gvid"] not in placed)
    lines.extend(f"  {_q(by_id[e['tail']]['name'])} -> {_q(by_id[e['head']]['name'])} "
                 f"[{_attrs(e)}];" for e in data.get("edges", []))
    lines.append("}")
    return "\n".join(lines) + "\n"


def _num(x: float) -> str:
    return f"{x:.2f}".rstrip("0").rstrip(".")


def _graphviz(program: str, args: list[str], text: str, out: Path | str) -> str:
    """Run Graphviz's ``program`` on DOT ``text``; a missing Graphviz or a failure is a
    diagnostic naming ``out``."""
    exe = shutil.which(program)
    if exe is None:
        raise error(E_OUTPUT, f"cannot render {out}: Graphviz's `{program}` is not installed",
                    Span.unknown(str(out)), hint="write a .dot file instead, or install "
                    "Graphviz (Debian: apt-get install graphviz)")
    proc = subprocess.run([exe, *args], input=text, capture_output=True, text=True,
                          timeout=300)
    if proc.returncode != 0:
        raise error(E_OUTPUT, f"Graphviz could not render {out}: {proc.stderr.strip()[:300]}",
                    Span.unknown(str(out)))
    return proc.stdout
