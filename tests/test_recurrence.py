"""Recurrence: `scan(cell, state = [...])` runs a cell along the time axis as one loop node
that owns the cell as a body graph; lowered to a PyTorch loop and an ONNX Scan."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import ssnc
from ssnc.compiler.ir import walk
from ssnc.compiler.legacy import renamed_keys

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
    m = model("model m : sequence[3] = (x) => let r = lstm(4, final = true)(x) in "
              "outputs(y = r[0], h = r[1], c = r[2])")
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
        got = net(x)
        y, (h, c) = ref(x)
        torch.testing.assert_close(got.y, y, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(got.h, h[0], rtol=1e-5, atol=1e-6)  # h_n, c_n
        torch.testing.assert_close(got.c, c[0], rtol=1e-5, atol=1e-6)
    assert not torch.equal(got.c, got.y[:, -1])  # c_n is its own value, not h's


def test_final_states_of_a_reversed_scan_are_at_the_first_step() -> None:
    m = model("model m : sequence[3] = (x) => let r = lstm(4, reverse = true, final = true)(x)"
              " in outputs(y = r[0], h = r[1])")
    out = run_torch(m, torch.randn(2, 5, 3))
    torch.testing.assert_close(out.h, out.y[:, 0])  # h after the last step run: t = 0
    text = m.format_ir()
    assert "(f32[N,T,4]{NTC}, f32[N,4]{NC}, f32[N,4]{NC}) = scan[reverse=true]" in text
    assert "return y=%lstm.scan.item1, h=%lstm.scan.item2" in text


@pytest.mark.parametrize("flat", [False, True], ids=["functions", "flat"])
def test_onnx_scan_parity_at_any_length(flat: bool) -> None:
    m = model("model m : sequence[3] = (x) => let r = lstm(3, reverse = true, final = true)("
              "lstm(4)(x)) in outputs(y = linear(2)(r[0]), h = r[1], c = r[2])")
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
            got = sess.run(None, {"input": x.numpy()})
            for mine, theirs in zip(got, run_torch(m, x), strict=True):
                np.testing.assert_allclose(mine, theirs.numpy(), rtol=1e-4, atol=1e-5)


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


@pytest.mark.parametrize("text,code,message", [
    ("model m : tensor[3, 8, 8] = lstm(4)", "E0301",
     "scan runs over a sequence [N,T,D]{NTC}, got [N,3,8,8]{NCHW}"),
    ("model m : sequence[3] = scan((x, h) => (x, concat(h, h, axis = -1)), state = [3])",
     "E0301", "state 1 enters the cell as [N,3]{NC} and leaves it as [N,6]{NC}"),
    ("model m : sequence[3] = scan((x, h) => x, state = [3])", "E0202",
     "the cell returns 1 stream; with 1 state it must return the step's output and 1 new state"),
    ("model m : sequence[3] = scan(relu, state = [0])", "E0202", "a list of positive sizes"),
    ("model m : sequence[3] = scan(relu, state = [2], reverse = 1)", "E0202", "true or false"),
    ("model m : sequence[3] = hornn(0, 4)", "E0204", "hornn's order is at least 1"),
    ("model m : sequence[3] = hornn(2, 4, pool = \"max\")", "E0204", "hornn's pool is"),
    ("model m : sequence[3] = ((x) => outputs(a = relu(x))) >> linear(2)", "E0202",
     "comes last"),
    ("model m : sequence[3] = (x) => outputs(a = x, b = 3)", "E0202",
     "output `b` must be a wire"),
    ("model m : sequence[3] = (x) => outputs(x)", "E0201", "names the model's outputs"),
    ("model m : sequence[3] = (x) => outputs(input = relu(x))", "E0102",
     "names the model's input"),
])
def test_recurrence_mistakes_are_diagnostics(text: str, code: str, message: str) -> None:
    with pytest.raises(ssnc.SsnError) as info:
        model(text)
    rendered = info.value.render()
    assert message in rendered, rendered
    assert info.value.diagnostics[0].code.id == code
    assert info.value.diagnostics[0].span.line >= 1


def reference_hmlstm(sd: dict[str, torch.Tensor], x: torch.Tensor, layers: int, dim: int,
                     slope: float, ln: bool = False) -> tuple[torch.Tensor, dict[str, int], float]:
    """HM-LSTM from docs/reference.md's equations, written independently of the compiler, with the
    compiled model's weights: outputs, how often each operation ran, and the smallest
    |z~ pre-activation| seen (how far parity is from flipping a boundary)."""
    cell = "hmrnn.scan.hm_cell."
    n, steps, _ = x.shape
    h = [torch.zeros(n, dim) for _ in range(layers)]
    c = [torch.zeros(n, dim) for _ in range(layers)]
    z = [torch.zeros(n, 1) for _ in range(layers - 1)]
    seen = {"copy": 0, "update": 0, "flush": 0}
    margin = float("inf")
    outputs = []
    for t in range(steps):
        below, z_below = x[:, t], torch.ones(n, 1)
        new_h, new_c, new_z = [], [], []
        for layer in range(layers):
            p = cell + "hm_layer." * (layer + 1)
            top = layer == layers - 1
            a = (h[layer] @ sd[p + "linear2.weight"].T + sd[p + "linear2.bias"]
                 + z_below * (below @ sd[p + "linear1.weight"].T))
            if not top:
                a = a + z[layer] * (h[layer + 1] @ sd[p + "linear3.weight"].T)
            d = dim
            gates = a
            if ln:  # over the four gates' pre-activations, and the cell before its tanh
                gates = torch.nn.functional.layer_norm(
                    a[:, :4 * d], (4 * d,), sd[p + "layernorm.weight"], sd[p + "layernorm.bias"])
            f, i, o = (torch.sigmoid(gates[:, k * d:(k + 1) * d]) for k in range(3))
            g = torch.tanh(gates[:, 3 * d:4 * d])
            z_prev = torch.zeros(n, 1) if top else z[layer]
            flush = z_prev == 1
            update = (z_prev == 0) & (z_below == 1)
            copy = (z_prev == 0) & (z_below == 0)
            seen["flush"] += int(flush.sum())
            seen["update"] += int(update.sum())
            seen["copy"] += int(copy.sum())
            c_new = torch.where(flush, i * g, torch.where(update, f * c[layer] + i * g, c[layer]))
            shown = c_new if not ln else torch.nn.functional.layer_norm(
                c_new, (d,), sd[p + "hm_norm.layernorm.weight"], sd[p + "hm_norm.layernorm.bias"])
            h_new = torch.where(copy, h[layer], o * torch.tanh(shown))
            new_h.append(h_new)
            new_c.append(c_new)
            if not top:
                pre = a[:, 4 * d:4 * d + 1]
                margin = min(margin, float(pre.abs().min()))
                new_z.append((torch.clamp((slope * pre + 1) / 2, 0, 1) > 0.5).float())
                below, z_below = h_new, new_z[-1]
        h, c, z = new_h, new_c, new_z
        every = torch.cat(h, -1)
        total = sum(torch.sigmoid(every @ sd[cell + f"linear{2 * k + 1}.weight"].T)
                    * (h[k] @ sd[cell + f"linear{2 * k + 2}.weight"].T) for k in range(layers))
        outputs.append(torch.relu(total))  # type: ignore[arg-type]
    return torch.stack(outputs, 1), seen, margin


HMRNN = "model m(layers = 3, dim = 4, slope = 1.0, ln = false) : sequence[3] = " \
        "hmrnn(layers = layers, dim = dim, slope = slope, out_dim = 5, layer_norm = ln)"


@pytest.mark.parametrize("slope,ln", [(1.0, False), (2.5, False), (1.0, True)])
def test_hmrnn_equals_the_equations(slope: float, ln: bool, tmp_path: Path) -> None:
    m = model(HMRNN, slope=slope, ln=ln)
    # parameters: per non-top layer 3 maps of (4 dim + 1) rows and a bias; the top layer two
    # maps of 4 dim rows and a bias; the output module 3 gates over [h1; h2; h3] and 3 W^e
    d, rows = 4, 17
    closed = (rows * 3 + rows * d + rows + rows * d) + (rows * d * 3 + rows) \
        + (4 * d * d + 4 * d * d + 4 * d) + 3 * (3 * d) + 3 * (5 * d)
    norms = 3 * (2 * 4 * d + 2 * d) if ln else 0  # gates' and cell's scale and shift
    assert m.total_params == closed + norms == 665 + norms
    net = m.to_torch(seed=5).eval()
    with torch.no_grad():  # scales and shifts away from 1 and 0, so the test can see them
        for key, value in net.state_dict().items():
            if "layernorm" in key:
                value.add_(torch.randn(value.shape, generator=torch.Generator().manual_seed(9)))
    x = torch.randn(4, 20, 3, generator=torch.Generator().manual_seed(3))
    want, seen, margin = reference_hmlstm(net.state_dict(), x, 3, d, slope, ln)
    assert margin > 1e-3  # no boundary sits near the threshold: parity cannot flap
    assert all(count > 0 for count in seen.values()), seen  # COPY, UPDATE and FLUSH all ran
    with torch.no_grad():
        torch.testing.assert_close(net(x), want, rtol=1e-5, atol=1e-6)
    np.savez(tmp_path / "w.npz", **{k: v.numpy() for k, v in net.state_dict().items()})
    proto = m.to_onnx(weights=tmp_path / "w.npz")  # the changed scales and shifts
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    (got,) = sess.run(None, {"input": x.numpy()})
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-4, atol=1e-5)



def test_hmrnn_boundary_detector_learns_through_the_step() -> None:
    m = model(HMRNN)
    net = m.to_torch(seed=5).train()
    x = torch.randn(4, 12, 3, generator=torch.Generator().manual_seed(3))
    net(x).pow(2).sum().backward()
    params = dict(net.named_parameters())
    detector = params["hmrnn.scan.hm_cell.hm_layer.linear2.weight"].grad  # layer 1, row 4 dim
    assert detector is not None and float(detector[16].abs().sum()) > 0
    top = params["hmrnn.scan.hm_cell.hm_layer.hm_layer.hm_layer.linear2.weight"]
    assert top.shape[0] == 16  # no boundary detector on the top layer


def test_the_card_form_of_hmrnn() -> None:
    m = model("model lm(vocab = 30) : tokens[vocab] = "
              "embedding(vocab, 64) >> hmrnn(layers = 3) >> linear(vocab)")
    assert m.ir[m.ir.outputs[0]].shape == ("N", "T", 30)
    dim, rows = 512, 4 * 512 + 1
    cells = (rows * 64 + rows * dim + rows + rows * dim) + (rows * dim * 3 + rows) \
        + (4 * dim * dim * 2 + 4 * dim) + 3 * (3 * dim) + 3 * (512 * dim)
    assert m.total_params == 30 * 64 + cells + (512 * 30 + 30)


def test_hmrnn_cell_copy_flush_update_by_hand() -> None:
    """One step of the compiled cell (its generated body method) on chosen states: layer 1's
    boundary detector is forced (its bias row), so layer 2 sees z^1_t = 0 or 1."""
    m = model(HMRNN)
    net = m.to_torch(seed=7).eval()
    (body,) = [getattr(net, k) for k in dir(net) if k.startswith("body_")]
    layer1 = "hmrnn.scan.hm_cell.hm_layer.linear2.bias"
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, generator=gen)
    h1, c1, h2, c2, h3, c3 = (torch.randn(2, 4, generator=gen) for _ in range(6))
    ones, zeros = torch.ones(2, 1), torch.zeros(2, 1)

    def step(bias: float, z1: torch.Tensor, z2: torch.Tensor,
             c1_old: torch.Tensor = c1) -> tuple[torch.Tensor, ...]:
        with torch.no_grad():
            net.state_dict()[layer1][16] = bias
            _, *new = body(x, h1, c1_old, z1, h2, c2, z2, h3, c3)
        return tuple(new)

    # COPY at layer 2 (z^2_{t-1} = 0, z^1_t = 0): h and c unchanged, bit for bit
    new = step(-100.0, zeros, zeros)
    assert torch.equal(new[2], zeros)  # layer 1's boundary was forced to 0
    assert torch.equal(new[3], h2) and torch.equal(new[4], c2)
    # FLUSH at layer 1 (z^1_{t-1} = 1): the old cell is ignored
    flushed = step(-100.0, ones, zeros)
    again = step(-100.0, ones, zeros, c1_old=c1 * 1000)
    assert torch.equal(flushed[1], again[1])
    # UPDATE at layer 2 (z^2_{t-1} = 0, z^1_t = 1): c = f c + i g
    new = step(100.0, zeros, zeros)
    assert torch.equal(new[2], ones)
    sd = net.state_dict()
    p = "hmrnn.scan.hm_cell.hm_layer.hm_layer."
    a = (h2 @ sd[p + "linear2.weight"].T + sd[p + "linear2.bias"]
         + new[0] @ sd[p + "linear1.weight"].T)  # z^2_{t-1} = 0: no top-down term
    f, i, g = torch.sigmoid(a[:, :4]), torch.sigmoid(a[:, 4:8]), torch.tanh(a[:, 12:16])
    torch.testing.assert_close(new[4], f * c2 + i * g)


def test_shipped_recurrent_specs_match_their_closed_forms() -> None:
    from tests.conftest import SPECS

    hm = ssnc.load(SPECS / "hmrnn_charlm.ssn").model(vocab=50)
    emb, d, rows, out = 128, 512, 4 * 512 + 1, 512
    layer1 = rows * emb + rows * d + rows + rows * d  # W (bottom-up), U (+ bias), top-down
    layer2 = rows * d + rows * d + rows + rows * d
    layer3 = 4 * d * d + 4 * d * d + 4 * d  # no top-down map, no boundary row
    output = 3 * (3 * d) + 3 * (out * d)  # gates over [h1; h2; h3], W^e per layer
    norms = 3 * (2 * 4 * d + 2 * d)  # layer norm: the gates' and the cell's scale and shift
    assert hm.total_params == 50 * emb + layer1 + layer2 + layer3 + output + norms \
        + (out * 50 + 50)
    assert hm.total_params == 8_449_460
    assert hm.total_macs == (layer1 - rows) + (layer2 - rows) + (layer3 - 4 * d) + output \
        + out * 50  # per step: every weight once, biases and lookups free

    ho = ssnc.load(SPECS / "hornn_lm.ssn").model(vocab=50, order=3, hidden=256)
    assert ho.total_params == 50 * 64 + (256 * 64 + 256) + 3 * 256 * 256 + (256 * 50 + 50)


def test_hornn_equals_its_equation() -> None:
    m = model("model m : sequence[3] = hornn(3, 4)")
    net = m.to_torch(seed=4).eval()
    sd = net.state_dict()
    cell = "hornn.scan.hornn_cell."
    x = torch.randn(2, 6, 3, generator=torch.Generator().manual_seed(2))
    hs: list[torch.Tensor] = []
    for t in range(6):
        pre = x[:, t] @ sd[cell + "linear1.weight"].T + sd[cell + "linear1.bias"]
        for i in range(1, 4):
            if t - i >= 0:  # before the start the state is zero
                pre = pre + (hs[t - i] * 0.6 ** i) @ sd[cell + f"linear{i + 1}.weight"].T
        hs.append(torch.tanh(pre))
    with torch.no_grad():
        torch.testing.assert_close(net(x), torch.stack(hs, 1), rtol=1e-5, atol=1e-6)


def test_scan_is_the_loop_form_of_a_shared_cell_unrolled() -> None:
    text = """
def cell(hidden) = (x, h) => let h2 = tanh(linear(hidden)(concat(x, h, axis = -1))) in (h2, h2)
def unroll(c, x, h, t, steps) =
    if t == steps then []
    else let r = c(slice(1, 3 * t, 3 * t + 3)(x), h) in [r[0]] + unroll(c, x, r[1], t + 1, steps)
model unrolled : tensor[12] =
    (x) => let c = shared(cell(5)) in concat(unroll(c, x, zeros(5)(x), 0, 4), axis = -1)
model looped : sequence[3] = scan(cell(5), state = [5])
"""
    program = ssnc.loads(text, "t.ssn")
    unrolled, looped = program.model("unrolled"), program.model("looped")
    assert unrolled.total_params == looped.total_params == 5 * 8 + 5  # shared: one cell
    assert sum(1 for n in unrolled.ir if n.op == "linear") == 4  # four applications ...
    assert sum(1 for _, n in walk(looped.ir) if n.op == "linear") == 1  # ... or one loop
    flat_net, loop_net = unrolled.to_torch(seed=1).eval(), looped.to_torch(seed=2).eval()
    by_shape = {tuple(v.shape): v for v in flat_net.state_dict().values()}
    loop_net.load_state_dict({k: by_shape[tuple(v.shape)]
                              for k, v in loop_net.state_dict().items()})
    x = torch.randn(3, 4, 3, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(flat_net(x.reshape(3, 12)), loop_net(x).reshape(3, 20))


NAMED = """
model charlm(vocab = 20, dim = 8) : tokens[vocab] =
    embedding(vocab, 8) >> hmrnn(layers = 3, dim = dim, out_dim = dim, boundaries = true)
    >> ((h) => outputs(logits = linear(vocab)(slice(-1, 0, dim)(h)),
                       boundaries = slice(-1, dim)(h)))
"""


@pytest.mark.parametrize("flat", [False, True], ids=["functions", "flat"])
def test_named_outputs_in_every_backend(flat: bool) -> None:
    m = model(NAMED)
    assert m.ir.output_names == ("logits", "boundaries")
    assert [o["name"] for o in m.info()["outputs"]] == ["logits", "boundaries"]
    assert m.info()["outputs"][1]["shape"] == ["N", "T", 2]
    x = torch.randint(0, 20, (3, 7), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = m.to_torch(seed=1).eval()(x)
    assert out._fields == ("logits", "boundaries")
    assert set(out.boundaries.unique().tolist()) <= {0.0, 1.0}
    proto = m.to_onnx(seed=1, flat=flat)
    onnx.checker.check_model(proto, full_check=True)
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    assert [o.name for o in sess.get_outputs()] == ["logits", "boundaries"]
    logits, boundaries = sess.run(None, {"input": x.numpy()})
    np.testing.assert_allclose(logits, out.logits.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(boundaries, out.boundaries.numpy())


def test_info_gives_macs_per_step_and_per_sequence() -> None:
    from typer.testing import CliRunner

    from ssnc.cli import app
    from tests.conftest import SPECS

    runner = CliRunner()
    spec = str(SPECS / "hornn_lm.ssn")
    result = runner.invoke(app, ["info", spec, "--steps", "100", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["macs_per_sequence"] == {"steps": 100, "macs": 100 * data["total_macs"]}
    table = runner.invoke(app, ["info", spec, "--steps", "100", "--depth", "1"])
    assert "MACs/step" in table.stdout
    assert f"MACs per sequence of 100 steps: {100 * data['total_macs']:,}" in table.stdout
    for args, message in ((["info", str(SPECS / "nin_cifar10.ssn"), "--steps", "5"],
                           "has no time axis"),
                          (["info", spec, "--steps", "0"], "positive integer")):
        bad = runner.invoke(app, args)
        assert bad.exit_code == 1 and message in bad.stderr and "Traceback" not in bad.output


def test_recurrent_models_at_every_supported_opset() -> None:
    from ssnc.backends.onnx import OPSETS

    m = model("model m : sequence[3] = lstm(4) >> "
              "hmrnn(layers = 2, dim = 3, out_dim = 3, layer_norm = true) >> linear(2)")
    x = torch.randn(2, 5, 3, generator=torch.Generator().manual_seed(0))
    want = run_torch(m, x)
    for opset in OPSETS:
        proto = m.to_onnx(seed=1, opset=opset)
        onnx.checker.check_model(proto, full_check=True)
        sess = ort.InferenceSession(proto.SerializeToString(),
                                    providers=["CPUExecutionProvider"])
        (got,) = sess.run(None, {"input": x.numpy()})
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-4, atol=1e-5, err_msg=str(opset))


def test_old_checkpoints_load_into_a_cell_whose_names_changed(tmp_path: Path) -> None:
    m = model("def lin2(h) = linear(h)\n"
              "model m : sequence[3] = scan((x, s) => let y = tanh(lin2(4)(x) + lin2(4)(s)) "
              "in (y, y), state = [4])")
    assert renamed_keys(m.ir)["scan.lin21.linear.weight"] == "scan.lin2_1.linear.weight"
    net = m.to_torch(seed=1)
    old = {k.replace("lin2_", "lin2"): v + 1.0 for k, v in net.state_dict().items()}
    assert str(net.load_state_dict(old)) == "<All keys matched successfully>"
    assert torch.equal(net.state_dict()["scan.lin2_2.linear.bias"], old["scan.lin22.linear.bias"])
    torch.save(old, tmp_path / "old.pt")
    loaded = m.to_torch(weights=tmp_path / "old.pt").state_dict()
    assert torch.equal(loaded["scan.lin2_1.linear.weight"], old["scan.lin21.linear.weight"])


def test_verify_keeps_a_loops_tuple_behind_its_items() -> None:
    g = model("model m : sequence[3] = (x) => linear(2)(lstm(4, final = true)(x)[2])").ir
    g.verify()
    scan = g["lstm.scan.scan"]
    assert scan.outputs == (("N", "T", 4), ("N", 4), ("N", 4)) and scan.shape == scan.outputs[0]
    assert [g[d].op for d, _ in g.consumers(scan.name)] == ["item"] * 3

    def broken(change: dict[str, object], who: str) -> str:
        nodes = [n.evolve(**change) if n.name == who else n for n in g]
        with pytest.raises(ssnc.SsnError) as info:
            g.with_nodes(nodes).verify()
        assert info.value.code == "E9001"
        return info.value.render()

    assert "tuple-valued, read by `linear`" in broken({"inputs": ("lstm.scan.scan",)}, "linear")
    assert "not tuple-valued" in broken({"inputs": ("input",)}, "lstm.scan.item1")
    assert "has no output 5" in broken({"attrs": {"index": 5}}, "lstm.scan.item1")
    assert "not by an `item` in its scope" in broken({"scope": 0}, "lstm.scan.item2")


def test_final_is_a_flag_and_item_is_not_callable() -> None:
    for text, message in [
            ("model m : sequence[3] = scan((x, h) => (x, h), state = [3], final = 1)",
             "`scan`'s `final` is true or false, got a number"),
            ("model m : sequence[3] = lstm(4, final = true) >> linear(2)",
             "`linear` takes 1 stream, got 3"),
            ("model m : sequence[3] = item(0)", "unknown name `item`")]:
        with pytest.raises(ssnc.SsnError) as info:
            model(text)
        assert message in info.value.render()


def test_pt2_export_keeps_the_loop_with_a_dynamic_length(tmp_path: Path) -> None:
    """`--to torch` traces the loop as torch's scan primitive: one program for every T; named
    outputs come back as a dict (a saved program cannot hold the generated named tuple)."""
    from typer.testing import CliRunner

    from ssnc.cli import app

    spec = tmp_path / "enc.ssn"
    spec.write_text("model enc : tokens[20] = (x) => let r = (embedding(20, 6) >> "
                    "hmrnn(layers = 2, dim = 5, out_dim = 4) >> lstm(3, final = true))(x) in "
                    "outputs(y = r[0], h = r[1])\n")
    out = tmp_path / "enc.pt2"
    result = CliRunner().invoke(app, ["compile", str(spec), "--to", "torch", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "Expect archive file" not in result.output
    program = torch.export.load(str(out))
    assert "scan" in str(program.graph)  # one loop, not T copies of the cell
    eager = ssnc.load(spec).model().to_torch(seed=0).eval()
    for steps in (1, 7, 23):
        x = torch.randint(0, 20, (3, steps), generator=torch.Generator().manual_seed(steps))
        with torch.no_grad():
            got, want = program.module()(x), eager(x)
        assert set(got) == {"y", "h"}
        torch.testing.assert_close(got["y"], want.y)
        torch.testing.assert_close(got["h"], want.h)


def test_the_slope_is_a_buffer_that_training_anneals(tmp_path: Path) -> None:
    """`set_slope` changes every hard sigmoid's slope buffer: the straight-through gradient
    scales with it (the forward pass does not change); ONNX exports the annealed value."""
    assert [ssnc.anneal_slope(e) for e in (0, 25, 100, 1000)] == [1.0, 2.0, 5.0, 5.0]
    m = model("model m : sequence[5] = (x) => step(hard_sigmoid(slope = 1.0)(x)) * 2.0")
    net = m.to_torch(seed=0)
    assert "slope" not in dict(net.named_parameters()) and m.total_params == 0
    x = torch.linspace(-0.1, 0.1, 5).reshape(1, 1, 5)

    def grad(slope: float) -> torch.Tensor:
        net.set_slope(slope)
        leaf = x.clone().requires_grad_()
        net(leaf).sum().backward()
        assert leaf.grad is not None
        return leaf.grad

    torch.testing.assert_close(grad(3.0), 3.0 * grad(1.0))  # d/dx = 2 * slope / 2 near 0
    assert float(net.state_dict()["hard_sigmoid.slope"]) == 1.0

    hm = model(HMRNN)
    trained = hm.to_torch(seed=1).eval()
    trained.set_slope(ssnc.anneal_slope(40))
    keys = [k for k in trained.state_dict() if k.endswith(".slope")]
    assert len(keys) == 2  # one detector per layer below the top
    path = tmp_path / "w.pt"
    torch.save(trained.state_dict(), path)
    proto = hm.to_onnx(weights=path)
    slopes = {i.name: float(onnx.numpy_helper.to_array(i)) for i in proto.graph.initializer
              if i.name in keys}
    assert slopes == dict.fromkeys(keys, pytest.approx(2.6))
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    xs = torch.randn(2, 6, 3)
    with torch.no_grad():
        np.testing.assert_allclose(sess.run(None, {"input": xs.numpy()})[0],
                                   trained(xs).numpy(), rtol=1e-4, atol=1e-5)
