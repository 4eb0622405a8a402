"""`ssnc graph`: DOT text from the IR, collapsed by depth, rendered by Graphviz."""

from __future__ import annotations

import re
import shutil

import pytest
from typer.testing import CliRunner

import ssnc
from ssnc.backends.dot import to_dot
from ssnc.cli import app
from tests.conftest import SPECS

runner = CliRunner()


def boxes(dot: str) -> set[str]:
    return set(re.findall(r'^\s*"([^"]+)" \[label', dot, re.M))


def edges(dot: str) -> set[tuple[str, str]]:
    return set(re.findall(r'^\s*"([^"]+)" -> "([^"]+)";', dot, re.M))


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
    stage1 = sum(m.ir.param_count(n) for n in m.ir if n.name.startswith("stage1."))
    assert f"{stage1:,} params" in dot
    deeper = to_dot(m.ir, depth=3)
    assert {"stage1.fractal.col1", "stage1.fractal.col3", "stage1.fractal.join2"} <= boxes(deeper)


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
