"""Regions: a scope's boundary is computed once, in the IR, and the backends and passes read
it (the foundation of loops and generated weights, issue 8)."""

from __future__ import annotations

import re

import onnx

import ssnc
from tests.conftest import ROOT

SPEC = """
def unit(w) = conv(w, 3) >> bn >> relu
def pair(w) = unit(w) >> unit(w)
def block(w) = (x) => relu(x + pair(w)(x))
model m : tensor[3, 8, 8] = conv(4) >> block(4) >> block(4) >> shared(conv(4, 1)) x2
    >> gap >> linear(2)
"""


def test_region_boundaries() -> None:
    g = ssnc.loads(SPEC).model().ir
    top = g.region(0)
    assert [c.scope.rule for c in top.children] == ["block", "block"]
    first = top.children[0]
    assert first.inputs == (top.nodes[0].name,) and len(first.outputs) == 1
    assert first.prefix == "block1"
    assert [c.scope.rule for c in first.children] == ["pair"]
    pair = first.children[0]
    assert [c.scope.rule for c in pair.children] == ["unit", "unit"]
    unit = pair.children[0]
    assert [n.op for n in unit.nodes] == ["conv", "bn", "relu"]
    assert unit.weights == tuple(f"{unit.prefix}.{k}" for k in (
        "conv.weight", "conv.bias", "bn.weight", "bn.bias", "bn.running_mean",
        "bn.running_var"))
    assert {n.name for n in first.members} >= {n.name for n in pair.members}
    assert first.first < top.children[1].first
    # a shared conv used twice: both uses read the owner's weights
    shared = [n for n in top.nodes if n.op == "conv" and n.index > first.first]
    assert len(shared) == 2 and shared[0].weights == shared[1].weights
    assert g.region(0) is top  # computed once


def test_onnx_functions_have_the_regions_boundaries() -> None:
    m = ssnc.loads(SPEC).model()
    proto = m.to_onnx(flat=False)
    g = m.ir
    calls = {n.name: n for n in proto.graph.node if n.domain == "ssnc.functions"}
    for region in g.region(0).children:
        call = calls[region.prefix]
        assert list(call.input) == [*region.inputs, *region.weights]
        assert list(call.output) == list(region.outputs)
    onnx.checker.check_model(proto, full_check=True)


def test_torch_classes_have_the_regions_boundaries() -> None:
    m = ssnc.loads(SPEC).model()
    net = m.to_torch()
    units = [r for r in _walk(m.ir.region(0)) if r.scope.rule == "unit"]
    assert units
    for region in units:
        module = net.get_submodule(region.prefix)
        assert type(module).__name__ == "Unit"
        keys = {f"{region.prefix}.{k}" for k in module.state_dict()
                if not k.endswith("num_batches_tracked")}
        assert keys == set(region.weights)


def _walk(region):  # type: ignore[no-untyped-def]
    yield region
    for child in region.children:
        yield from _walk(child)


def test_no_module_outside_the_ir_builds_scope_children_or_boundaries() -> None:
    # building a children map (`children[scope.parent]`) or a boundary (inputs read from
    # outside a set of member names) belongs to the IR alone: compiler/ir.py and the
    # regions it computes, compiler/regions.py
    patterns = [re.compile(r"\[\w+\.parent\]"),
                re.compile(r"for \w+ in \w+\.inputs if \w+ not in"),
                re.compile(r"\w+ not in \w+ for \w+, _ in \w+\.consumers")]
    offenders = []
    for path in [*ROOT.glob("backends/*.py"), *ROOT.glob("compiler/**/*.py"), ROOT / "api.py"]:
        if path.name in ("ir.py", "regions.py") and path.parent.name == "compiler":
            continue
        text = path.read_text(encoding="utf-8")
        offenders += [f"{path.name}: {p.pattern}" for p in patterns if p.search(text)]
    assert offenders == [], offenders
