"""Nested graphs: a node that owns a body graph (as ONNX's Loop and torch.fx's cond do), shown
with a test-only op `twice` (its body applied twice, weights shared), through verify, shape
inference, the printer, `info` and both backends."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from onnx import TensorProto, helper

import ssnc
from ssnc.backends import torch as torch_backend
from ssnc.backends.onnx import build as onnx_build
from ssnc.backends.onnx import lower as onnx_lower
from ssnc.base.diagnostics import SsnError
from ssnc.compiler.ir import Graph, Node, captures, walk
from ssnc.compiler.ops import OPS, BodyRule, OpDecl, Shape, ShapeMismatch
from ssnc.compiler.passes.infer_shapes import infer_shapes
from ssnc.compiler.printer import format_graph
from ssnc.compiler.stats import info_json, op_count, total_params


def _same_shape(ins: Sequence[Shape], outs: Sequence[Shape], attrs: object) -> Shape:
    if tuple(outs[0]) != tuple(ins[0]):
        raise ShapeMismatch(f"the body maps {list(ins[0])} to {list(outs[0])}; applied twice "
                            "it must keep its shape", inputs=(0,))
    return outs[0]


TWICE = OpDecl("twice", "Applies its body twice (test only).", (), lambda s, a: s[0],
               body=BodyRule(lambda shapes, attrs: (shapes[0],), _same_shape))


def _torch_twice(node: Node, ins: Sequence[Node], xs: Sequence[str],
                 m: str) -> torch_backend.Lowered:
    return torch_backend.Lowered(None, f"{m}({m}({xs[0]}))")


def _onnx_twice(e: onnx_lower.Emitter, n: Node, xs: Sequence[str], ws: Sequence[str],
                out: str, ins: Sequence[Node]) -> None:
    body = e.body(n.body)  # type: ignore[arg-type]
    cond_in, cond_out = e.fresh("cond"), e.fresh("cond")
    body.add("Identity", [cond_in], [cond_out], f"{n.name}/cond")
    graph = body.subgraph(n.name, [helper.make_tensor_value_info(e.fresh("i"), TensorProto.INT64,
                                                                  []),
                                   helper.make_tensor_value_info(cond_in, TensorProto.BOOL, [])],
                          [helper.make_tensor_value_info(cond_out, TensorProto.BOOL, [])])
    trips = e.constant(f"{n.name}.trips", np.array(2, np.int64))
    e.add("Loop", [trips, "", xs[0]], [out], n.name, body=graph)


@pytest.fixture(autouse=True)
def twice_op(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setitem(OPS, "twice", TWICE)
    monkeypatch.setitem(torch_backend.LOWERINGS, "twice", _torch_twice)
    monkeypatch.setitem(onnx_lower.LOWERINGS, "twice", _onnx_twice)
    yield


def _prefixed(graph: Graph, prefix: str) -> Graph:
    names = {n.name: f"{prefix}.{n.name}" for n in graph.nodes_by_name.values()}
    nodes = [n.evolve(name=names[n.name], inputs=tuple(names[i] for i in n.inputs),
                      weights=tuple(names[w] for w in n.weights), shape=None if n.op != "param"
                      else n.shape) for n in graph.nodes_by_name.values()]
    return Graph.build(graph.model, nodes, graph.scopes, [names[i] for i in graph.inputs],
                       [names[o] for o in graph.outputs])


def nested(body_spec: str = "conv(4) >> relu") -> Graph:
    """`conv >> twice(BODY) >> gap >> linear`, the body's weights shared by both applications."""
    outer = ssnc.loads("model m : tensor[3, 6, 6] = conv(4) >> relu >> gap >> linear(3)",
                       "outer.ssn").model().ir
    body = ssnc.loads(f"model b : tensor[4, 6, 6] = {body_spec}", "body.ssn").model().ir
    relu = next(n for n in outer if n.op == "relu")
    gap = next(n for n in outer if n.op == "gap")
    twice = relu.evolve(name="twice", op="twice", body=_prefixed(body, "twice"), shape=None)
    nodes = [twice if n is relu else n.evolve(inputs=("twice",)) if n is gap else n
             for n in outer.nodes_by_name.values()]
    return infer_shapes(outer.with_nodes(nodes))


def test_a_body_is_verified_typed_and_walked() -> None:
    g = nested()
    g.verify()
    twice = g["twice"]
    assert twice.shape == ("N", 4, 6, 6) and twice.body is not None
    assert twice.body["twice.conv"].shape == ("N", 4, 6, 6)
    assert twice.body["twice.conv.weight"].shape == (4, 4, 3, 3)  # typed by its reader
    held = [(h is g, n.name) for h, n in walk(g)]
    assert held.index((True, "twice")) + 1 == held.index((False, "twice.input"))
    assert captures(twice.body) == ()
    assert "twice.conv.weight" in g.tensors() and total_params(g) == (
        4 * 3 * 9 + 4) + (4 * 4 * 9 + 4) + (4 * 3 + 3)
    assert g.region(0).weights[:4] == ("conv.weight", "conv.bias", "twice.conv.weight",
                                       "twice.conv.bias")


def test_verify_checks_inside_bodies() -> None:
    g = nested()
    body = g["twice"].body
    assert body is not None
    bad_body = body.with_nodes(n.evolve(inputs=("nowhere",)) if n.op == "relu" else n
                               for n in body.nodes_by_name.values())
    bad = g.with_nodes(n.evolve(body=bad_body) if n.name == "twice" else n for n in g)
    with pytest.raises(SsnError) as info:
        bad.verify()
    assert info.value.code == "E9001"
    assert "in model `m`, the body of `twice`" in str(info.value)
    assert "input `nowhere` does not exist" in info.value.render()
    no_body = g.with_nodes(n.evolve(body=None) if n.name == "twice" else n for n in g)
    with pytest.raises(SsnError) as info:
        no_body.verify()
    assert "owns no body graph" in info.value.render()


def test_a_body_that_changes_shape_is_a_diagnostic() -> None:
    with pytest.raises(SsnError) as info:
        nested("conv(8) >> relu")
    assert info.value.code == "E0301"
    assert "applied twice it must keep its shape" in info.value.render()


def test_printer_and_info_show_the_body() -> None:
    g = nested()
    text = format_graph(g)
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("  %twice :"))
    assert lines[start].endswith("{") and "twice(%conv)" in lines[start]
    assert lines[start + 1].startswith("    %twice.input : f32[N,4,6,6]{NCHW} = input()")
    assert ("    %twice.conv : f32[N,4,6,6]{NCHW} = conv[out=4, pad=1](%twice.input; "
            "%twice.conv.weight, %twice.conv.bias)") in text
    end = lines.index("  }")
    assert lines[end - 1] == "    return %twice.relu" and end > start
    info = info_json(g)
    rows = {r["path"]: r for r in info["scopes"]}
    assert rows["twice"]["params"] == 4 * 4 * 9 + 4 and rows["twice"]["nodes"] == 3
    assert info["total_params"] == total_params(g) and info["nodes"] == op_count(g) == 8


def _reference(module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    sd = module.state_dict()
    h = F.conv2d(x, sd["conv.weight"], sd["conv.bias"], padding=1)
    for _ in range(2):
        h = F.relu(F.conv2d(h, sd["twice.conv.weight"], sd["twice.conv.bias"], padding=1))
    return F.linear(h.mean((2, 3)), sd["linear.weight"], sd["linear.bias"])


@pytest.mark.parametrize("flat", [False, True], ids=["functions", "flat"])
def test_both_backends_lower_a_body(flat: bool) -> None:
    g = nested()
    module = torch_backend.to_torch(g, seed=1).eval()
    source = torch_backend.generate_source(g)
    assert "def body_twice(self, twice_input):" in source
    assert "self.body_twice(self.body_twice(" in source
    x = torch.randn(3, 3, 6, 6, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        got = module(x)
    torch.testing.assert_close(got, _reference(module, x), rtol=1e-5, atol=1e-6)

    proto = onnx_build.build_model(g, seed=1, flat=flat)
    onnx.checker.check_model(proto, full_check=True)
    loops = [n for n in proto.graph.node if n.op_type == "Loop"]
    assert len(loops) == 1  # never unrolled
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    out = sess.run(None, {"input": x.numpy()})[0]
    np.testing.assert_allclose(out, got.numpy(), rtol=1e-5, atol=1e-5)
