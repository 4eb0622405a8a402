"""Weights as values (HyperNetworks): `param(...)` tensors, ops given a generated `weight`,
the standard library's static hypernetwork (`hypernet`, `hyper_kernel`), and the Wide ResNet
and Hyper-WRN specs, in both backends."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import ssnc
from ssnc.cli import app
from tests.conftest import SPECS, compile_refused, ort_output

runner = CliRunner()

TINY = """\
model m(tile = 2, z_dim = 3, k = 3) : tensor[2, 5, 5] =
    let h = hypernet(k, tile, z_dim) in
    (x) => conv(4, k, bias = false, weight = hyper_kernel(h[0], 4, 2, k, tile, z_dim))(x)
"""


def test_a_generated_kernel_is_the_generator_output_computed_by_hand() -> None:
    """The paper's equations on tiny sizes, in NumPy from the module's own tensors:
    a_i = W_i z + B_i, K_i = <W_out, a_i> + B_out, tiles placed by (output, input) block."""
    model = ssnc.loads(TINY, "tiny.ssn").model()
    net = model.to_torch().eval()
    state = {k: v.detach().numpy().astype(np.float64) for k, v in net.state_dict().items()}
    (z,) = (v for k, v in state.items() if k.rsplit(".", 1)[-1] == "param")
    w1, b1, w2, b2 = (state[next(k for k in state if k.endswith(end))]
                      for end in ("linear1.weight", "linear1.bias", "linear2.weight",
                                  "linear2.bias"))
    tile, z_dim, k, out, cin = 2, 3, 3, 4, 2
    assert z.shape == (out // tile * (cin // tile), z_dim)
    kernel = np.zeros((out, cin, k, k))
    for t, embedding in enumerate(z):  # tile t = (o, i), output-major
        o, i = divmod(t, cin // tile)
        a = (w1 @ embedding + b1).reshape(tile, z_dim)  # a_j for each input channel j
        for j in range(tile):
            k_j = (w2 @ a[j] + b2).reshape(tile, k, k)  # the tile's outputs for input j
            kernel[o * tile:(o + 1) * tile, i * tile + j] = k_j
    x = np.random.default_rng(0).standard_normal((3, 2, 5, 5)).astype(np.float32)
    want = torch.nn.functional.conv2d(torch.from_numpy(x).double(), torch.from_numpy(kernel),
                                      padding=1).numpy()
    with torch.no_grad():
        got = net(torch.from_numpy(x)).double().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ort_output(model.to_onnx(), x), want, rtol=1e-5, atol=1e-6)


def test_gradients_reach_the_embeddings_and_the_generator() -> None:
    model = ssnc.load(SPECS / "hyper_wrn.ssn").model(depth=10, k=1)
    net = model.to_torch().train()
    x = torch.randn(4, 3, 32, 32)
    loss = torch.nn.functional.cross_entropy(net(x), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    grads = {k: p.grad for k, p in net.named_parameters()}
    embeddings = [k for k in grads if k.endswith(".param")]
    generator = [k for k in grads if ".hyper_generator." in k]
    assert len(embeddings) == 6 and len(generator) == 4  # one generator, shared
    for key in embeddings + generator:
        assert grads[key] is not None and float(grads[key].abs().sum()) > 0, key


def _tiles(n: int, k: int) -> int:
    """Hyper-WRN's 16 x 16 kernel tiles: per group, the first block's two kernels (widening
    from the previous group), then 2 (n - 1) square ones."""
    total = 0
    for w_in, w in ((1, k), (k, 2 * k), (2 * k, 4 * k)):
        total += w * w_in + w * w + 2 * (n - 1) * w * w
    return total


def _hyper_wrn_params(depth: int, k: int, classes: int = 10, z_dim: int = 64) -> int:
    """The closed form of specs/hyper_wrn.ssn's count (docs/reference.md): the generator once,
    one embedding per tile, and WRN's parts that are not generated."""
    n = (depth - 4) // 6
    generator = 16 * z_dim * z_dim + 16 * z_dim + z_dim * 16 * 9 + 16 * 9
    conv1 = 3 * 16 * 9
    projections = 16 * 16 * k * (k != 1) + 16 * k * 32 * k + 32 * k * 64 * k
    bn_channels = (16 + 16 * k) + (16 * k + 32 * k) + (32 * k + 64 * k) \
        + (n - 1) * 2 * (16 * k + 32 * k + 64 * k) + 64 * k
    classifier = 64 * k * classes + classes
    return generator + z_dim * _tiles(n, k) + conv1 + projections + 2 * bn_channels + classifier


@pytest.mark.parametrize(("k", "plain", "hyper"), [(1, 563_930, 97_770), (2, 2_243_546, 155_626)])
def test_parameter_counts(k: int, plain: int, hyper: int) -> None:
    """WRN's published-layout counts exactly; Hyper-WRN against its closed form, which gives
    the paper's 0.097 M (40-1, everything counted) and 0.148 M (40-2, without BatchNorm and
    the classifier)."""
    wrn = ssnc.load(SPECS / "wrn.ssn").model(k=k)
    assert wrn.total_params == plain
    model = ssnc.load(SPECS / "hyper_wrn.ssn").model(k=k)
    assert model.total_params == hyper == _hyper_wrn_params(40, k)
    assert _hyper_wrn_params(16, 3, 100) == ssnc.load(SPECS / "hyper_wrn.ssn").model(
        depth=16, k=3, classes=100).total_params
    tensors = model.ir.tensors()
    bn = sum(s.numel for key, s in tensors.items() if ".bn" in key and s.trainable)
    classifier = sum(s.numel for key, s in tensors.items() if key.startswith("wide_resnet.linear"))
    assert (hyper - bn - classifier) // 1000 == {1: 94, 2: 148}[k]  # thousands
    info = model.info()
    assert len(info["generated"]) == 6 * ((40 - 4) // 6)  # every 3x3 kernel of the groups
    assert info["total_params"] == hyper


@pytest.mark.parametrize("flat", [True, False], ids=["flat", "functions"])
@pytest.mark.parametrize("spec", ["wrn", "hyper_wrn"])
def test_onnx_runtime_equals_torch(spec: str, flat: bool) -> None:
    """The published size (depth 40, k = 2): about a second per form."""
    model = ssnc.load(SPECS / f"{spec}.ssn").model()
    net = model.to_torch().eval()
    proto = model.to_onnx(flat=flat)
    assert bool(proto.functions) is not flat
    for batch in (1, 3):
        x = np.random.default_rng(batch).standard_normal((batch, 3, 32, 32)).astype(np.float32)
        with torch.no_grad():
            want = net(torch.from_numpy(x)).numpy()
        got = ort_output(proto, x)
        assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()


FRACTAL = """\
model m(C = 3) : tensor[3, 8, 8] =
    let h = hypernet(3, 4, 5) in
    conv(8, 3) >> fractal(C, hyper_conv(h, 8, 8) >> bn >> relu, drop_path = 0.5) >> gap
        >> linear(4)
"""


def test_columns_and_drop_path_keep_working_with_generated_weights() -> None:
    """A fractal over hypernetwork convolutions: drop-path trains in both modes, and every
    column compiles, loads the full model's weights and equals ONNX Runtime."""
    model = ssnc.loads(FRACTAL, "f.ssn").model()
    names = set(model.ir.tensors())
    assert "fractal.col1.hyper_conv1.param" in names  # the embedding sits in its column
    for mode in ("batch", "sample"):
        net = model.to_torch(drop_mode=mode).train()
        net(torch.randn(4, 3, 8, 8)).sum().backward()
    full = model.to_torch().state_dict()
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    for k in (1, 2, 3):
        column = model.to_torch(column=k).eval()
        column.load_state_dict({key: full[key] for key in column.state_dict()})
        with torch.no_grad():
            want = column(torch.from_numpy(x)).numpy()
        got = ort_output(model.to_onnx(column=k, weights=None), x)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_a_param_value_in_a_shared_block_is_read_by_every_use() -> None:
    source = ("model m : tensor[4] = shared((x) => x * param([4], init = uniform(-1, 1))) × 3\n")
    model = ssnc.loads(source, "s.ssn").model()
    assert model.total_params == 4
    (key,) = model.ir.tensors()
    value = model.initial_weights()[key]
    assert np.all(np.abs(value) <= 1) and np.ptp(value) > 0
    x = np.ones((2, 4), np.float32)
    np.testing.assert_allclose(ort_output(model.to_onnx(), x), np.broadcast_to(value ** 3, (2, 4)),
                               rtol=1e-6)


@pytest.mark.parametrize(("source", "needle", "at"), [
    ("model m : tensor[2, 5, 5] = (x) => conv(4, 3, weight = param([4, 3, 3, 3]))(x)\n",
     "`conv` needs its weight to be [4,2,3,3], but the one it is given is [4,3,3,3]",
     ["m.ssn:1:36", "note: the weight is made here, by a `param`", "m.ssn:1:56)"]),
    ("model m : tensor[2, 5, 5] = (x) =>\n    let k = param([6, 2]) >> linear(18) in\n"
     "    conv(4, 3, weight = k)(x)\n",
     "`conv` needs its weight to be [4,2,3,3], but the one it is given is [6,18]",
     ["m.ssn:3:5", "note: the weight is made here, by `linear`", "m.ssn:2:30)"]),
    ("model m : tensor[4] = (x) => linear(2, weight = param([2, 0]))(x)\n",
     "`param`'s shape must be positive sizes, got [2, 0]", ["m.ssn:1:55"]),
    ("model m : tensor[4] = (x) => bn(weight = param([4]))(x)\n",
     "`bn` has no parameter `weight`", ["m.ssn:1:33"]),
    ("model m : tensor[4] = (x) => let z = param([4]) in relu(x)\n",
     "this `param` is never read by an op", ["m.ssn:1:38"]),
    ("model m : tensor[24, 8, 8] = hyper_conv(hypernet(3, 16, 8), 24, 24)\n",
     "hyper_conv: channels must be tile multiples",
     ["error[E0204]", "called from here", "m.ssn:1:30)"]),
    ("model m : tensor[4] = (x) => linear(2, weight = 3)(x)\n",
     "`linear`'s `weight` (a generated weight (a wire), read in place of a learned one) must "
     "be `none` or a wire, got a number", ["m.ssn:1:40"]),
])
def test_bad_weights_are_diagnostics(source: str, needle: str, at: list[str],
                                     tmp_path: Path) -> None:
    stderr = compile_refused(tmp_path, source)
    assert needle in stderr, stderr
    for where in at:
        assert where in stderr, (where, stderr)


def test_half_precision_converts_the_generator_too() -> None:
    """fp16 ONNX of Hyper-WRN: the generator and embeddings in fp16, within 1e-2 of the
    float32 model's largest logit, the same top-1."""
    model = ssnc.load(SPECS / "hyper_wrn.ssn").model(depth=10, k=1)
    x = np.random.default_rng(0).standard_normal((8, 3, 32, 32)).astype(np.float32)
    half = model.to_onnx(precision="fp16")
    embeddings = [t for t in half.graph.initializer if t.name.endswith(".param")]
    assert embeddings and all(t.data_type == 10 for t in embeddings)  # FLOAT16
    want, got = ort_output(model.to_onnx(), x), ort_output(half, x)
    assert np.abs(got - want).max() <= 1e-2 * np.abs(want).max()
    assert (got.argmax(1) == want.argmax(1)).all()


class RefHyperLSTM(torch.nn.Module):
    """An independent HyperLSTM from the equations (docs/reference.md): nn.LSTMCell for the
    hyper LSTM over [x; h], per gate two scaling embeddings and a bias embedding."""

    def __init__(self, d: int, n: int, nh: int, nz: int):
        super().__init__()
        lin = torch.nn.Linear
        self.n, self.nh = n, nh
        self.small = torch.nn.LSTMCell(d + n, nh)
        self.wx, self.wh = lin(d, 4 * n, bias=False), lin(n, 4 * n, bias=False)
        self.zx = torch.nn.ModuleList(lin(nh, nz) for _ in range(4))
        self.dx = torch.nn.ModuleList(lin(nz, n, bias=False) for _ in range(4))
        self.zh = torch.nn.ModuleList(lin(nh, nz) for _ in range(4))
        self.dh = torch.nn.ModuleList(lin(nz, n, bias=False) for _ in range(4))
        self.zb = torch.nn.ModuleList(lin(nh, nz, bias=False) for _ in range(4))
        self.db = torch.nn.ModuleList(lin(nz, n) for _ in range(4))

    def forward(self, xs: torch.Tensor) -> torch.Tensor:
        h = c = xs.new_zeros(xs.shape[0], self.n)
        hh = hc = xs.new_zeros(xs.shape[0], self.nh)
        outs = []
        for t in range(xs.shape[1]):
            x = xs[:, t]
            hh, hc = self.small(torch.cat([x, h], -1), (hh, hc))
            ax, ah = self.wx(x).chunk(4, -1), self.wh(h).chunk(4, -1)
            i, g, f, o = (self.dx[k](self.zx[k](hh)) * ax[k] + self.dh[k](self.zh[k](hh)) * ah[k]
                          + self.db[k](self.zb[k](hh)) for k in range(4))
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            outs.append(h)
        return torch.stack(outs, 1)

    def load_from(self, state: dict[str, torch.Tensor], d: int) -> None:
        """The compiled `hyperlstm`'s tensors, by its state_dict keys."""
        cell = "hyperlstm.scan.hyperlstm_cell."
        w = state[cell + "lstm_cell.linear.weight"]
        mine = {"small.weight_ih": w[:, :d + self.n], "small.weight_hh": w[:, d + self.n:],
                "small.bias_ih": state[cell + "lstm_cell.linear.bias"],
                "small.bias_hh": torch.zeros(4 * self.nh),
                "wx.weight": state[cell + "linear1.weight"],
                "wh.weight": state[cell + "linear2.weight"]}
        for k in range(4):
            for z, dd, scope in (("zx", "dx", f"hyper_scale{2 * k + 1}"),
                                 ("zh", "dh", f"hyper_scale{2 * k + 2}"),
                                 ("zb", "db", f"hyper_bias{k + 1}")):
                for key, value in state.items():
                    if key.startswith(f"{cell}{scope}.linear"):
                        layer, role = key[len(f"{cell}{scope}.linear"):].split(".")
                        mine[f"{z if layer == '1' else dd}.{k}.{role}"] = value
        self.load_state_dict(mine)


def test_hyperlstm_equals_an_independent_implementation() -> None:
    """The stdlib `hyperlstm` against RefHyperLSTM with the same weights, and ONNX Runtime
    (both forms) against PyTorch at T = 1 and 7."""
    d, n, nh, nz = 5, 6, 3, 2
    model = ssnc.loads(f"model m : sequence[{d}] = hyperlstm({n}, {nh}, {nz})\n",
                       "h.ssn").model()
    net = model.to_torch().eval()
    ref = RefHyperLSTM(d, n, nh, nz)
    ref.load_from(net.state_dict(), d)
    assert sum(p.numel() for p in ref.parameters()) - 4 * nh == model.total_params
    for steps in (1, 7):
        x = np.random.default_rng(steps).standard_normal((3, steps, d)).astype(np.float32)
        with torch.no_grad():
            want = ref(torch.from_numpy(x)).numpy()
            got = net(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        for flat in (True, False):
            np.testing.assert_allclose(ort_output(model.to_onnx(flat=flat), x), want, rtol=1e-4,
                                       atol=1e-5)


def test_hyperlstm_charlm_reports_its_size() -> None:
    """The paper's PTB configuration: 1000 main units, 128 hyper units, N_z = 4 (the closed
    form: the hyper LSTM, the main maps, 8 scaling and 4 bias embeddings, embedding and
    logits)."""
    model = ssnc.load(SPECS / "hyperlstm_charlm.ssn").model()
    n, nh, nz, d, vocab = 1000, 128, 4, 128, 50
    small = 4 * nh * (d + n + nh) + 4 * nh
    main = 4 * n * d + 4 * n * n
    embeddings = 8 * (nh * nz + nz + nz * n) + 4 * (nh * nz + nz * n + n)
    assert model.total_params == small + main + embeddings + vocab * d + n * vocab + vocab
    assert model.total_params == 5_270_210


def test_param_values_count_against_the_node_budget(tmp_path: Path) -> None:
    """Nothing else bounds how many `param`s a comprehension makes."""
    spec = tmp_path / "many.ssn"
    spec.write_text("model m : tensor[4] = (x) => let ps = [param([4]) for i in range(50)] in "
                    "x * sum(ps)\n")
    result = runner.invoke(app, ["check", str(spec), "--max-nodes", "40"])
    assert result.exit_code == 1 and "error[E0403]" in result.stderr, result.stderr
    assert "expands beyond 40 nodes" in result.stderr
    assert runner.invoke(app, ["check", str(spec)]).exit_code == 0
