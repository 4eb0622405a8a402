"""`ssnc graph`: DOT text from the IR, collapsed by depth, rendered by Graphviz."""

from __future__ import annotations

import re
import shutil

import pytest
from typer.testing import CliRunner

import ssnc
from ssnc.backends.dot import to_dot
from ssnc.cli import app
from ssnc.compiler.stats import param_count
from tests.conftest import GOLDEN, SPECS, drawn_positions

runner = CliRunner()


def boxes(dot: str) -> set[str]:
    return set(re.findall(r'^\s*"([^"]+)" \[label', dot, re.M))


def edges(dot: str) -> set[tuple[str, str]]:
    """The drawn edges (not the invisible ones that only place things)."""
    return set(re.findall(r'^\s*"([^"]+)" -> "([^"]+)"(?: \[weight=\d+\])?;', dot, re.M))


def test_full_graph_has_every_node_edge_and_scope_cluster() -> None:
    m = ssnc.load(SPECS / "nin_cifar10.ssn").model()
    dot = to_dot(m.ir)
    assert boxes(dot) == {n.name for n in m.ir if n.op != "param"}
    expected = {(src, n.name) for n in m.ir for src in n.inputs}
    assert edges(dot) == expected
    assert 'subgraph "cluster_nin.stage1.mlpconv"' in dot


def test_depth_collapses_scopes_into_boxes() -> None:
    m = ssnc.load(SPECS / "fractalnet.ssn").model(classes=10)
    dot = to_dot(m.ir, depth=1)
    assert boxes(dot) == {"input", "stage1", "stage2", "stage3", "stage4", "stage5", "flatten",
                          "linear"}
    assert ("stage1", "stage2") in edges(dot) and ("stage5", "flatten") in edges(dot)
    stage1 = sum(param_count(m.ir, n) for n in m.ir if n.name.startswith("stage1."))
    assert f"{stage1:,} params" in dot
    deeper = to_dot(m.ir, depth=3)  # columns alone would draw cycles: the block is one box
    assert {"stage1.fractal", "stage2.fractal"} <= boxes(deeper)
    assert not any(".col" in b or ".join" in b for b in boxes(deeper))
    units = to_dot(m.ir, depth=4)
    assert {"stage1.fractal.col1.unit1", "stage1.fractal.col3.unit4",
            "stage1.fractal.join2"} <= boxes(units)


def test_cli_writes_dot_and_renders(tmp_path) -> None:  # type: ignore[no-untyped-def]
    spec = str(SPECS / "fractalnet_digits.ssn")
    out = tmp_path / "g.dot"
    result = runner.invoke(app, ["graph", spec, "-o", str(out), "--depth", "2"])
    assert result.exit_code == 0, result.output
    assert out.read_text().startswith('digraph "fractalnet_digits"')
    if shutil.which("dot") is None:
        pytest.xfail("Graphviz's dot is not installed here (.ci/run installs it)")
    svg = tmp_path / "g.svg"
    result = runner.invoke(app, ["graph", spec, "-o", str(svg), "--column", "3"])
    assert result.exit_code == 0, result.output
    assert "<svg" in svg.read_text() and "col3" in svg.read_text()


def test_missing_graphviz_is_a_diagnostic(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(shutil, "which", lambda name: None)
    out = tmp_path / "g.png"
    result = runner.invoke(app, ["graph", str(SPECS / "nin_cifar10.ssn"), "-o", str(out)])
    assert result.exit_code == 1 and "error[E0603]" in result.stderr
    assert "write a .dot file instead" in result.stderr and not out.exists()


FRACTAL4 = """
def unit(w) = conv(w, 3, bias = false) >> bn >> relu
model f(C = 4) : tensor[3, 8, 8] = fractal(C, unit(4)) >> gap >> linear(3)
"""


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
@pytest.mark.parametrize("width,depth", [(3, None), (4, None), (4, 3), (5, 3)])
def test_a_fractal_is_drawn_like_figure_1(width: int, depth: int | None) -> None:
    """Units level by depth, each join at its depth below the units it closes, every edge
    pointing down the page, the columns in one order, and no cycle when collapsed."""
    import networkx as nx

    m = ssnc.loads(FRACTAL4, "f.ssn").model(C=width)
    dot = to_dot(m.ir, depth)
    pos, warnings = drawn_positions(dot)
    assert "Warning" not in warnings
    drawn = edges(dot)
    assert nx.is_directed_acyclic_graph(nx.DiGraph(list(drawn)))
    for tail, head in drawn:
        assert pos[tail][1] > pos[head][1], (tail, head)  # down the page
    # the columns' tops: one row, col1 ... colC from the left
    tops = [pos[f"fractal.col{c}.__top"] for c in range(1, width + 1)]
    assert max(y for _, y in tops) - min(y for _, y in tops) < 1 / 72
    xs = [x for x, _ in tops]
    assert xs == sorted(xs) and len(set(xs)) == width
    # units level by depth: the last box of every unit ending at depth d shares its y
    level: dict[int, set[float]] = {}
    for node in m.ir:
        name = node.name if depth is None else ".".join(node.name.split(".")[:depth])
        if node.column is not None and node.position is not None and name in pos:
            d = node.position << (width - node.column)
            if node.op == "relu" or depth is not None:
                level.setdefault(d, set()).add(round(pos[name][1] * 72))
    assert len(level) == 2 ** (width - 1) and all(max(ys) - min(ys) <= 1 for ys in level.values())
    for join in (n for n in m.ir if n.op == "mean"):
        assert join.depth is not None
        assert pos[join.name][1] * 72 < min(level[join.depth]) - 1  # below what it closes


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
@pytest.mark.parametrize("depth", [None, 4])
def test_fractal_blocks_stack_without_a_staircase(depth: int | None) -> None:
    """The stages and the ops between them are centred on one axis (dot alone shifts each
    block sideways from the one before), and every block's columns read col1 ... col3."""
    from ssnc.backends.dot import layout

    m = ssnc.load(SPECS / "fractalnet.ssn").model(classes=10)
    dot = to_dot(m.ir, depth)
    pos, _ = drawn_positions(dot)
    laid = layout(dot)
    centres = []
    for name in ("input", "flatten", "linear"):
        at = re.search(rf'^\s*"{name}" \[.*?pos="([-\d.]+),', laid, re.M)
        assert at is not None
        centres.append(float(at.group(1)))
    for s in range(1, 6):
        bb = re.search(rf'"cluster_stage{s}" {{\s*graph \[[^\]]*?bb="([^"]+)"', laid)
        assert bb is not None
        x1, _, x2, _ = (float(v) for v in bb.group(1).split(","))
        centres.append((x1 + x2) / 2)
    assert max(centres) - min(centres) < 1, centres  # points
    ys = [pos[f"stage{s}.maxpool"][1] for s in range(1, 6)]
    assert ys == sorted(ys, reverse=True)  # one below the other
    for s in range(1, 6):
        tops = [pos[f"stage{s}.fractal.col{c}.__top"][0] for c in (1, 2, 3)]
        assert tops == sorted(tops)


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
def test_a_model_shows_its_picture_in_jupyter(monkeypatch: pytest.MonkeyPatch) -> None:
    m = ssnc.load(SPECS / "fractalnet.ssn").model(classes=10)
    svg = m._repr_svg_()
    assert svg is not None and svg.lstrip().startswith("<?xml") and "<svg" in svg
    assert "stage1.fractal" in svg  # 158 ops: drawn collapsed to the blocks
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert m._repr_svg_() is None  # Jupyter then shows the one-line repr


def test_mermaid_has_the_same_boxes_clusters_and_edges_as_dot() -> None:
    from ssnc.backends.dot import to_mermaid

    m = ssnc.loads(FRACTAL4, "f.ssn").model(C=3)
    for depth in (None, 2):
        text = to_mermaid(m.ir, depth)
        dot = to_dot(m.ir, depth)
        assert text.startswith("%% f: drawn by ssnc graph\nflowchart TD\n")
        declared = dict(re.findall(r'^\s*(n\d+)[\[(]+"([^"]*)"[\])]+$', text, re.M))
        assert len(declared) == len(boxes(dot))  # one Mermaid node per DOT box
        links = re.findall(r"^\s*(n\d+) --> (n\d+)$", text, re.M)
        assert len(links) == len(edges(dot)) and {a for pair in links for a in pair} <= \
            set(declared)
        opened = re.findall(r'^\s*subgraph (n\d+)\["([^"]*)"\]$', text, re.M)
        assert len(opened) == dot.count("subgraph ") == len(re.findall(r"^\s*end$", text, re.M))
        assert depth or "mean ×2<br/>drop_path=0.15" in text  # DOT's line breaks


@pytest.mark.parametrize("args,code,needle", [
    (["-f", "mermaid"], 0, "flowchart TD"),
    (["--format", "dot"], 0, 'digraph "fractalnet_digits"'),
    ([], 1, "needs -o FILE, or --format dot or mermaid"),
    (["-f", "png"], 1, "a png picture needs a file"),
])
def test_graph_prints_text_formats(args: list[str], code: int, needle: str) -> None:
    result = runner.invoke(app, ["graph", str(SPECS / "fractalnet_digits.ssn"), "-d", "2",
                                 *args])
    assert result.exit_code == code, result.output
    assert needle in (result.stdout if code == 0 else result.stderr)


def test_graph_format_and_extension_agree(tmp_path) -> None:  # type: ignore[no-untyped-def]
    spec = str(SPECS / "fractalnet_digits.ssn")
    clash = tmp_path / "g.svg"
    result = runner.invoke(app, ["graph", spec, "-o", str(clash), "-f", "mermaid"])
    assert result.exit_code == 1 and "contradicts" in result.stderr and not clash.exists()
    text = tmp_path / "g.mmd"
    result = runner.invoke(app, ["graph", spec, "-o", str(text), "-d", "2"])
    assert result.exit_code == 0 and text.read_text().startswith("%% fractalnet_digits")
    chosen = tmp_path / "g.txt"  # an extension that says nothing: --format decides
    result = runner.invoke(app, ["graph", spec, "-o", str(chosen), "-f", "dot"])
    assert result.exit_code == 0 and chosen.read_text().startswith("digraph")


@pytest.mark.parametrize("depth", [None, 2])
def test_golden_pictures_of_a_fractal(golden, depth: int | None  # type: ignore[no-untyped-def]
                                      ) -> None:
    """The DOT (with its rank constraints: column tops in a row, units by depth, joins below
    what they close) and the Mermaid text of a 3-column fractal, pinned."""
    from ssnc.backends.dot import to_mermaid

    m = ssnc.loads(FRACTAL4, "f.ssn").model(C=3)
    name = f"fractal3_depth{depth}"
    dot = to_dot(m.ir, depth)
    if depth is None:
        assert '{ rank=same; "fractal.col1.__top"; "fractal.col2.__top"; "fractal.col3.__top"; }' \
            in dot
        assert ('{ rank=same; "fractal.col3.unit4.conv"; "fractal.col2.unit2.conv"; '
                '"fractal.col1.unit1.conv"; }') in dot  # the units ending at depth 4
    golden(GOLDEN / "pictures" / f"{name}.dot", dot)
    golden(GOLDEN / "pictures" / f"{name}.mmd", to_mermaid(m.ir, depth))


def test_nodes_with_equal_attributes_share_one_frozen_mapping() -> None:
    """A big model holds a few dozen attribute mappings, not one per node; values equal in
    Python but not in meaning (`1`, `1.0`, `True`; `0.0`, `-0.0`) stay apart."""
    from ssnc.compiler.frozen import freeze_attrs

    model = ssnc.load(SPECS / "fractalnet.ssn").model(C=4, classes=10)
    nodes = list(model.ir.nodes_by_name.values())
    assert len({id(n.attrs) for n in nodes}) < len(nodes) // 20
    assert freeze_attrs({"k": (3, 3), "s": "x"}) is freeze_attrs({"k": (3, 3), "s": "x"})
    kinds = [freeze_attrs({"v": v}) for v in (1, 1.0, True, 0.0, -0.0)]
    assert len({id(k) for k in kinds}) == 5
    assert [type(k["v"]) for k in kinds] == [int, float, bool, float, float]
    assert str(kinds[4]["v"]) == "-0.0"
    unhashable = freeze_attrs({"v": [1, 2]})
    assert unhashable == {"v": [1, 2]} and unhashable is not freeze_attrs({"v": [1, 2]})
    with pytest.raises(TypeError):
        kinds[0]["v"] = 2  # type: ignore[index]
