"""Recurrence: `scan(cell, state = [...])` runs a cell along the time axis as one loop node
that owns the cell as a body graph; lowered to a PyTorch loop and an ONNX Scan."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import ssnc
from ssnc.compiler.ir import walk

ELMAN = """
def cell(hidden) = (x, h) => let h2 = tanh(linear(hidden)(x) + linear(hidden, bias = false)(h))
                             in (h2, h2)
model m(hidden = 5, reverse = false) : sequence[3] =
    scan(cell(hidden), state = [hidden], reverse = reverse) >> linear(2)
"""


def model(text: str, **params: object) -> ssnc.Model:
    return ssnc.loads(text, "t.ssn").model(**params)  # type: ignore[arg-type]


def run_torch(m: ssnc.Model, x: torch.Tensor, seed: int = 1) -> torch.Tensor:
    with torch.no_grad():
        out: torch.Tensor = m.to_torch(seed=seed).eval()(x)
    return out


def test_the_loop_is_one_node_that_owns_the_cell() -> None:
    m = model(ELMAN)
    scan = m.ir["scan.scan"]
    assert scan.op == "scan" and scan.body is not None
    assert [m.ir[i].op for i in scan.inputs] == ["input", "zeros"]  # sequence, initial state
    assert scan.shape == ("N", "T", 5)  # T stays symbolic
    body = scan.body
    assert [body[i].shape for i in body.inputs] == [("N", 3), ("N", 5)]
    assert sorted(n.op for n in body if not n.is_source) == ["linear", "linear", "sum", "tanh"]
    assert m.total_params == (5 * 3 + 5) + 5 * 5 + (2 * 5 + 2)  # the cell's weights once
    assert m.total_macs == 3 * 5 + 5 * 5 + 5 * 2  # per step
    assert {n.name for _, n in walk(m.ir) if n.op == "param"} == {
        "scan.cell.linear1.weight", "scan.cell.linear1.bias", "scan.cell.linear2.weight",
        "linear.weight", "linear.bias"}


def test_elman_equals_a_hand_written_loop() -> None:
    m = model(ELMAN)
    net = m.to_torch(seed=2).eval()
    sd = net.state_dict()
    x = torch.randn(3, 6, 3, generator=torch.Generator().manual_seed(0))
    h = torch.zeros(3, 5)
    ys = []
    for t in range(6):
        h = torch.tanh(x[:, t] @ sd["scan.cell.linear1.weight"].T + sd["scan.cell.linear1.bias"]
                       + h @ sd["scan.cell.linear2.weight"].T)
        ys.append(h @ sd["linear.weight"].T + sd["linear.bias"])
    with torch.no_grad():
        torch.testing.assert_close(net(x), torch.stack(ys, 1))
    reverse = model(ELMAN, reverse=True)
    flipped = run_torch(reverse, x.flip(1), seed=2).flip(1)
    torch.testing.assert_close(flipped, run_torch(m, x, seed=2))


@pytest.mark.parametrize("steps", [1, 7])
@pytest.mark.parametrize("batch", [1, 3])
def test_stdlib_lstm_equals_torch_lstm(steps: int, batch: int) -> None:
    m = model("model m : sequence[3] = lstm(4)")
    net = m.to_torch(seed=batch).eval()
    sd = net.state_dict()
    w, b = sd["lstm.scan.lstm_cell.linear.weight"], sd["lstm.scan.lstm_cell.linear.bias"]
    ref = torch.nn.LSTM(3, 4, batch_first=True)
    with torch.no_grad():  # one linear over [x; h], bias b_ih + b_hh
        ref.weight_ih_l0.copy_(w[:, :3])
        ref.weight_hh_l0.copy_(w[:, 3:])
        ref.bias_ih_l0.copy_(b * 0.25)
        ref.bias_hh_l0.copy_(b * 0.75)
        x = torch.randn(batch, steps, 3)
        torch.testing.assert_close(net(x), ref(x)[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("flat", [False, True], ids=["functions", "flat"])
def test_onnx_scan_parity_at_any_length(flat: bool) -> None:
    m = model("model m : sequence[3] = lstm(4) >> lstm(3, reverse = true) >> linear(2)")
    proto = m.to_onnx(seed=1, flat=flat)
    onnx.checker.check_model(proto, full_check=True)
    onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
    scans = [n for n in proto.graph.node if n.op_type == "Scan"]
    scans += [n for f in proto.functions for n in f.node if n.op_type == "Scan"]
    assert len(scans) == 2  # never unrolled
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    for steps in (1, 7, 100):
        for batch in (1, 3):
            x = torch.randn(batch, steps, 3, generator=torch.Generator().manual_seed(steps))
            (got,) = sess.run(None, {"input": x.numpy()})
            np.testing.assert_allclose(got, run_torch(m, x).numpy(), rtol=1e-4, atol=1e-5)


def test_backprop_through_time_reaches_every_weight() -> None:
    m = model("def cell(h) = (x, s) => let s2 = tanh(linear(h)(concat(x, s, axis = -1))) in "
              "(step(hard_sigmoid(slope = 2.0)(s2)) * s2, s2)\n"
              "model m : sequence[3] = scan(cell(4), state = [4]) >> linear(1)")
    net = m.to_torch(seed=0).train()
    x = torch.randn(2, 5, 3)
    net(x).pow(2).sum().backward()
    grads = {k: p.grad for k, p in net.named_parameters()}
    assert set(grads) == {"scan.cell.linear.weight", "scan.cell.linear.bias", "linear.weight",
                          "linear.bias"}
    assert all(g is not None and bool(g.abs().sum() > 0) for g in grads.values())


def test_a_recurrent_block_on_tokens_after_an_embedding() -> None:
    m = model("model m(vocab = 11) : tokens[vocab] = embedding(vocab, 6) >> lstm(5) >> "
              "linear(vocab)")
    assert m.ir[m.ir.outputs[0]].shape == ("N", "T", 11)
    x = torch.randint(0, 11, (2, 4))
    proto = m.to_onnx(seed=3)
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    (got,) = sess.run(None, {"input": x.numpy()})
    np.testing.assert_allclose(got, run_torch(m, x, seed=3).numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("text,message", [
    ("model m : tensor[3, 8, 8] = lstm(4)", "scan runs over a sequence [N,T,D], got [N,3,8,8]"),
    ("model m : sequence[3] = scan((x, h) => (x, concat(h, h, axis = -1)), state = [3])",
     "state 1 enters the cell as [N,3] and leaves it as [N,6]"),
    ("model m : sequence[3] = scan((x, h) => x, state = [3])",
     "the cell returns 1 stream; with 1 state it must return the step's output and 1 new state"),
    ("model m : sequence[3] = scan(relu, state = [0])", "a list of positive sizes"),
    ("model m : sequence[3] = scan(relu, state = [2], reverse = 1)", "true or false"),
])
def test_recurrence_mistakes_are_diagnostics(text: str, message: str) -> None:
    with pytest.raises(ssnc.SsnError) as info:
        model(text)
    rendered = info.value.render()
    assert message in rendered, rendered
    assert info.value.diagnostics[0].span.line >= 1
