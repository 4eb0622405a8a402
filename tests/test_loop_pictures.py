"""Recurrent models drawn and summarised as what they are: a loop is a cluster titled with
what it iterates (`scan over T`), its cell's scopes nested inside it, each state carried
back from the cell's output to its input by a labelled edge; the loop's plumbing (the loop
node, its initial `zeros`, the projections of its outputs) is folded into it, in the
picture and in `info`'s rows alike. A recursive rule whose next instance only hands its
results on is drawn as levels one below the other (HM-RNN's layers, as the paper's Figure 1
draws them); a scope that only wraps another is one cluster with it."""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess

import pytest

import ssnc
from ssnc.backends.dot import to_dot, to_mermaid
from ssnc.compiler.stats import info_json
from tests.conftest import GOLDEN, SPECS, drawn_positions

HMRNN = ("model lm(vocab = 20, layers = 2) : tokens[vocab] = embedding(vocab, 8) >> "
         "hmrnn(layers = layers, dim = 8, out_dim = 8) >> linear(vocab)\n")
LOOP, CELL = "hmrnn/scan", "hmrnn/scan.hm_cell"  # `hmrnn` only wraps its loop: one cluster


def _clusters(dot: str) -> list[tuple[int, str]]:
    """(indent, name) of every cluster, in order: nesting shows in the indent."""
    return [(len(m.group(1)), m.group(2))
            for m in re.finditer(r'^( *)subgraph "cluster_([^"]+)"', dot, re.M)]


@pytest.mark.parametrize("depth", [None, 4])
def test_a_loop_is_a_cluster_holding_its_cell_with_a_back_edge_per_state(depth: int | None
                                                                         ) -> None:
    m = ssnc.loads(HMRNN, "lm.ssn").model()
    dot = to_dot(m.ir, depth)
    clusters = _clusters(dot)
    names = [n for _, n in clusters]
    loop = names.index(LOOP)
    cell = names.index(CELL)
    assert clusters[cell][0] > clusters[loop][0] and cell > loop  # the cell inside the loop
    assert 'label="hmrnn · scan over T"' in dot and "hmrnn" not in names
    states = len(m.ir["hmrnn.scan.scan"].inputs) - 1
    labels = re.findall(r'style=dashed, constraint=false, [^\]]*label="(state \d+)"', dot)
    assert sorted(labels) == sorted(f"state {k}" for k in range(1, states + 1))
    assert "zeros" not in dot and "item" not in dot and f'"{LOOP}.scan"' not in dot
    assert f'"embedding" -> "{LOOP}.input1"' in dot  # the sequence into the step input


def test_hmrnn_layers_are_drawn_one_below_the_other() -> None:
    """The HM-RNN at --depth 4, as the paper's Figure 1: each layer a cluster beside the
    others (not inside the layer below), each below the one it reads from, each but the top
    with its boundary detector, with bottom-up, top-down and recurrent inputs."""
    m = ssnc.loads(HMRNN, "lm.ssn").model(layers=3)
    dot = to_dot(m.ir, 4)
    clusters = dict((n, i) for i, n in _clusters(dot))
    layers = [f"{CELL}.hm_layer", f"{CELL}.hm_layer@2", f"{CELL}.hm_layer@3"]
    assert [clusters[name] for name in layers] == [clusters[CELL] + 2] * 3  # siblings
    for k, name in enumerate(layers, 1):
        assert f'label="hm_layer (level {k})"' in dot
        boxes = set(re.findall(rf'^ *"({re.escape(name)}\.[^"]+)" \[label="(\w+)', dot, re.M))
        ops = {op for _, op in boxes}
        assert ({"hard_sigmoid", "step"} <= ops) == (k < 3), (k, ops)  # the boundary detector
    edges = re.findall(r'^ *"([^"]+)" -> "([^"]+)"', dot, re.M)
    for upper, lower in itertools.pairwise(layers):  # bottom-up: h of the one below
        assert any(t.startswith(upper + ".") and h.startswith(lower + ".") for t, h in edges)
    fed = {h.split(".")[2] for t, h in edges if re.fullmatch(rf"{re.escape(LOOP)}\.input\d+", t)}
    assert fed == {"hm_layer", "hm_layer@2", "hm_layer@3"}  # recurrent and top-down states
    if shutil.which("dot") is None:
        pytest.skip("Graphviz's dot is not installed (.ci/run installs it)")
    where, warnings = drawn_positions(dot)  # as `ssnc graph` draws it
    assert "Warning" not in warnings
    for upper, lower in itertools.pairwise(layers):
        above = [y for n, (_, y) in where.items() if n.startswith(upper + ".")]
        below = [y for n, (_, y) in where.items() if n.startswith(lower + ".")]
        assert max(below) < min(above), (upper, lower)


STACK = """def unit(w) = conv(w, 3) >> relu
def wrap(w) = unit(w)
def stack(n) = if n == 0 then identity else conv(4, 3) >> relu >> stack(n - 1)
def nest(n) = if n == 0 then identity else conv(4, 3) >> residual(nest(n - 1))
model m : tensor[3, 8, 8] = wrap(4) >> stack(3) >> nest(2) >> gap >> linear(2)
"""


def test_a_recursion_that_only_hands_on_is_levels_one_that_is_read_stays_nested() -> None:
    """`stack` passes its next instance's result on: levels, side by side at the top. `nest`
    adds its next instance's result to its input: the inner one is part of the outer one."""
    m = ssnc.loads(STACK, "m.ssn").model()
    dot = to_dot(m.ir)
    indents = dict((n, i) for i, n in _clusters(dot))
    assert {indents[n] for n in ("stack", "stack@2", "stack@3")} == {2}
    assert [f"stack (level {k})" in dot for k in (1, 2, 3)] == [True] * 3
    assert "@" not in "".join(n for n in indents if n.startswith("nest"))
    inner = next(n for n in indents if n.startswith("nest.") and "nest" in n.split(".")[-1])
    assert indents[inner] > indents["nest"]
    collapsed = to_dot(m.ir, 1)  # each level a box of its own
    boxes = re.findall(r'^ *"(stack[^"]*)" \[label="([^"]+)"', collapsed, re.M)
    assert [(n, t.split("\\n")[0]) for n, t in boxes] == [
        ("stack", "stack (level 1)"), ("stack@2", "stack (level 2)"),
        ("stack@3", "stack (level 3)")]


def test_a_scope_that_only_wraps_another_is_one_cluster() -> None:
    m = ssnc.loads(STACK, "m.ssn").model()
    dot = to_dot(m.ir)
    names = [n for _, n in _clusters(dot)]
    assert "wrap/unit" in names and "wrap" not in names and 'label="wrap · unit"' in dot
    assert '"wrap/unit" [label="wrap · unit\\n2 ops' in to_dot(m.ir, 1)


def test_the_rendered_picture_draws_every_state_edge() -> None:
    """What users get from Graphviz (`dot -Tplain`): one back-edge per state, no `zeros`."""
    if shutil.which("dot") is None:
        pytest.skip("Graphviz's dot is not installed (.ci/run installs it)")
    m = ssnc.loads(HMRNN, "lm.ssn").model()
    plain = subprocess.run(["dot", "-Tplain"], input=to_dot(m.ir, 4), capture_output=True,
                           text=True, check=True).stdout
    edges = [line for line in plain.splitlines() if line.startswith("edge ")]
    assert edges
    states = len(m.ir["hmrnn.scan.scan"].inputs) - 1
    assert sum(1 for e in edges if re.search(r'"?state \d+"?', e) and " dashed " in e) == states
    assert not any("zeros" in line for line in plain.splitlines() if line.startswith("node "))


def test_mermaid_draws_the_states_too() -> None:
    m = ssnc.loads(HMRNN, "lm.ssn").model()
    text = to_mermaid(m.ir, 4)
    assert text.count(" -. state ") == len(m.ir["hmrnn.scan.scan"].inputs) - 1 == 5
    assert "scan over T" in text  # h, c and z of the first layer, h and c of the second


def test_info_rows_fold_the_loop() -> None:
    """The loop's scope is its row (`scan over T`), the cell's rows under it; no row for the
    loop node, its initial states or its projections; totals unchanged."""
    m = ssnc.load(SPECS / "hmrnn_charlm.ssn").model()
    info = info_json(m.ir, 4)
    rows = {r["path"]: r for r in info["scopes"]}
    assert rows["hmrnn.scan"]["op"] == "scan over T"
    assert "hmrnn.scan.hm_cell" in rows and rows["hmrnn.scan.hm_cell"]["depth"] == 3
    assert not any(p.rsplit(".", 1)[-1].startswith(("zeros", "item")) or p == "hmrnn.scan.scan"
                   for p in rows)
    assert rows["hmrnn.scan"]["params"] == rows["hmrnn.scan.hm_cell"]["params"]
    assert info["total_params"] == m.total_params == 8_449_460
    fixed = ssnc.loads("model m : sequence[4, 6] = lstm(3, reverse = true) >> linear(2)\n",
                       "f.ssn").model()
    assert "scan over 6 (reversed)" in {r["op"] for r in info_json(fixed.ir)["scopes"]}


def test_a_summary_prints_as_its_table_at_the_prompt() -> None:
    summary = ssnc.load(SPECS / "hornn_lm.ssn").model().summary(3)
    assert repr(summary) == str(summary)
    assert "scan over T" in repr(summary) and "ScopeRow(" not in repr(summary)


def test_golden_pictures_of_an_hmrnn(golden) -> None:  # type: ignore[no-untyped-def]
    """The DOT (layers as levels, states as back-edges, the level order) and Mermaid text of
    a two-layer HM-RNN at --depth 4, and its summary table, pinned: a change to how loops
    and levels are drawn shows as one reviewed diff."""
    m = ssnc.loads(HMRNN, "lm.ssn").model()
    pictures = GOLDEN / "pictures"
    golden(pictures / "hmrnn2_depth4.dot", to_dot(m.ir, 4))
    golden(pictures / "hmrnn2_depth4.mmd", to_mermaid(m.ir, 4))
    golden(pictures / "hmrnn2_summary.txt", str(m.summary(4)))
