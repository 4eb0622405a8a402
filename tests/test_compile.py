"""torch.compile: every shipped spec's module is one graph in eval mode (fullgraph=True, by
capture), and three compile with inductor on the CPU (the machine's C compiler) and match
eager; a recurrent model keeps its time loop as one scan, and trains compiled with eager's
gradients. `bench/bench_compile.py` compiles every spec with inductor at full size."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

import ssnc  # noqa: E402
from ssnc.backends.torch import example_input, example_inputs  # noqa: E402
from tests.conftest import SMALL, SPECS  # noqa: E402

CASES = {
    "fractalnet_c2": lambda: ssnc.load(SPECS / "fractalnet.ssn").model(
        C=2, classes=10, widths=[8, 8, 16, 16, 16]),
    "nin": lambda: ssnc.load(SPECS / "nin_cifar10.ssn").model(),
    "charlm": lambda: ssnc.load(SPECS / "hmrnn_charlm.ssn").model(),
}


def captured(net: torch.nn.Module) -> tuple[Any, list[torch.fx.GraphModule]]:
    """``net`` under ``torch.compile(fullgraph=True)`` (a graph break raises) with a backend
    that records each graph Dynamo captures and runs it as captured."""
    graphs: list[torch.fx.GraphModule] = []

    def capture(gm, inputs):  # type: ignore[no-untyped-def]
        graphs.append(gm)
        return gm.forward

    return torch.compile(net, backend=capture, fullgraph=True), graphs


@pytest.mark.parametrize("case", sorted(CASES))
def test_eval_models_compile_to_one_graph(case: str) -> None:
    m = CASES[case]()
    net = m.to_torch(seed=0).eval()
    x = example_input(m.ir, batch=2, steps=8)
    compiled = torch.compile(net, fullgraph=True)
    with torch.no_grad():
        want, got = net(x), compiled(x)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("spec", sorted(SPECS.glob("*.ssn")), ids=lambda p: p.stem)
def test_every_shipped_spec_is_one_graph_in_eval_mode(spec: Path) -> None:
    m = ssnc.load(spec).model(**SMALL.get(spec.stem, {}))
    net = m.to_torch(seed=0).eval()
    xs = example_inputs(m.ir, batch=2, steps=8)
    torch._dynamo.reset()
    compiled, graphs = captured(net)
    with torch.no_grad():
        got, want = compiled(*xs), net(*xs)
    assert len(graphs) == 1
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_the_time_loop_stays_one_scan_and_trains_compiled() -> None:
    m = ssnc.load(SPECS / "hornn_lm.ssn").model()
    net = m.to_torch(seed=0).train()
    x = example_input(m.ir, batch=2, steps=8)
    compiled, graphs = captured(net)
    compiled(x)
    loops = [n for g in graphs for n in g.graph.nodes
             if n.op == "call_function" and str(n.target) == "scan"]
    assert len(graphs) == 1 and len(loops) == 1  # one loop, not 8 unrolled steps
    compiled = torch.compile(net, fullgraph=True)
    compiled(x).sum().backward()
    grads = {k: p.grad.clone() for k, p in net.named_parameters()}
    net.zero_grad()
    net(x).sum().backward()
    for k, p in net.named_parameters():
        torch.testing.assert_close(grads[k], p.grad, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("mode", ["batch", "sample"])
def test_training_with_drop_path_compiles_to_one_graph(mode: str) -> None:
    """Under torch.compile drop-path selects with masks, branch-free (eager batch mode skips
    dropped columns instead): one graph per model, whatever the draw."""
    m = ssnc.loads("model f : tensor[2, 8, 8] = fractal(3, conv(4) >> bn >> relu, "
                   "drop_path = 1e-9) >> gap >> linear(3)", "f.ssn").model()
    net = m.to_torch(seed=0, drop_mode=mode, global_ratio=0.0).train()
    x = example_input(m.ir, batch=4)
    compiled, graphs = captured(net)
    out = compiled(x)
    compiled(x)  # a second draw: no new graph
    assert len(graphs) == 1
    torch.testing.assert_close(out, net(x))  # every path kept: the same computation
