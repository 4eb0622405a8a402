"""torch.compile: the generated modules compile as one graph (fullgraph=True, inductor on
the CPU with the machine's C compiler) in eval mode and match eager; a recurrent model keeps
its time loop as one scan, and trains compiled with eager's gradients."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import ssnc  # noqa: E402
from ssnc.backends.torch import example_input  # noqa: E402
from tests.conftest import SPECS  # noqa: E402

CASES = {
    "fractalnet_c2": lambda: ssnc.load(SPECS / "fractalnet.ssn").model(
        C=2, classes=10, widths=[8, 8, 16, 16, 16]),
    "nin": lambda: ssnc.load(SPECS / "nin_cifar10.ssn").model(),
    "charlm": lambda: ssnc.load(SPECS / "hmrnn_charlm.ssn").model(),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_eval_models_compile_to_one_graph(case: str) -> None:
    m = CASES[case]()
    net = m.to_torch(seed=0).eval()
    x = example_input(m.ir, batch=2, steps=8)
    compiled = torch.compile(net, fullgraph=True)
    with torch.no_grad():
        want, got = net(x), compiled(x)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_the_time_loop_stays_one_scan_and_trains_compiled() -> None:
    m = ssnc.load(SPECS / "hornn_lm.ssn").model()
    net = m.to_torch(seed=0).train()
    x = example_input(m.ir, batch=2, steps=8)
    graphs = []

    def capture(gm, inputs):  # type: ignore[no-untyped-def]
        graphs.append(gm)
        return gm.forward

    torch.compile(net, backend=capture, fullgraph=True)(x)
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
    graphs = []

    def capture(gm, inputs):  # type: ignore[no-untyped-def]
        graphs.append(gm)
        return gm.forward

    compiled = torch.compile(net, backend=capture, fullgraph=True)
    out = compiled(x)
    compiled(x)  # a second draw: no new graph
    assert len(graphs) == 1
    torch.testing.assert_close(out, net(x))  # every path kept: the same computation
