"""Axis roles and the convolution family in 1, 2 and 3 dimensions: the shipped Inception-v3
and TCN, and a small 3-D network, each equal to a hand-written PyTorch network on copied
weights (and ONNX Runtime to both); roles in printed shapes; diagnostics for kernels,
paddings and roles that do not fit."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

import ssnc
from tests.conftest import SPECS, compile_refused, equals_hand_written


def ch(c: int, f: float) -> int:
    return max(1, round(c * f))


class Basic(nn.Module):
    """torchvision's BasicConv2d: conv (no bias), BatchNorm (eps 0.001), ReLU."""

    def __init__(self, cin: int, cout: int, k: Any, stride: int = 1, padding: Any = 0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def pool_branch(x: torch.Tensor, conv: nn.Module) -> torch.Tensor:
    out: torch.Tensor = conv(F.avg_pool2d(x, 3, 1, 1))
    return out


class InceptionA(nn.Module):
    def __init__(self, cin: int, pool: int, f: float):
        super().__init__()
        self.b1 = Basic(cin, ch(64, f), 1)
        self.b5 = nn.Sequential(Basic(cin, ch(48, f), 1), Basic(ch(48, f), ch(64, f), 5, 1, 2))
        self.b3 = nn.Sequential(Basic(cin, ch(64, f), 1), Basic(ch(64, f), ch(96, f), 3, 1, 1),
                                Basic(ch(96, f), ch(96, f), 3, 1, 1))
        self.pool = Basic(cin, pool, 1)
        self.out = ch(64, f) * 2 + ch(96, f) + pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b1(x), self.b5(x), self.b3(x), pool_branch(x, self.pool)], 1)


class InceptionB(nn.Module):
    def __init__(self, cin: int, f: float):
        super().__init__()
        self.b3 = Basic(cin, ch(384, f), 3, 2)
        self.d = nn.Sequential(Basic(cin, ch(64, f), 1), Basic(ch(64, f), ch(96, f), 3, 1, 1),
                               Basic(ch(96, f), ch(96, f), 3, 2))
        self.out = ch(384, f) + ch(96, f) + cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b3(x), self.d(x), F.max_pool2d(x, 3, 2)], 1)


class InceptionC(nn.Module):
    def __init__(self, cin: int, c7: int, f: float):
        super().__init__()
        w = ch(192, f)
        self.b1 = Basic(cin, w, 1)
        self.b7 = nn.Sequential(Basic(cin, c7, 1), Basic(c7, c7, (1, 7), 1, (0, 3)),
                                Basic(c7, w, (7, 1), 1, (3, 0)))
        self.d7 = nn.Sequential(Basic(cin, c7, 1), Basic(c7, c7, (7, 1), 1, (3, 0)),
                                Basic(c7, c7, (1, 7), 1, (0, 3)), Basic(c7, c7, (7, 1), 1, (3, 0)),
                                Basic(c7, w, (1, 7), 1, (0, 3)))
        self.pool = Basic(cin, w, 1)
        self.out = 4 * w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b1(x), self.b7(x), self.d7(x), pool_branch(x, self.pool)], 1)


class InceptionD(nn.Module):
    def __init__(self, cin: int, f: float):
        super().__init__()
        w = ch(192, f)
        self.b3 = nn.Sequential(Basic(cin, w, 1), Basic(w, ch(320, f), 3, 2))
        self.b7 = nn.Sequential(Basic(cin, w, 1), Basic(w, w, (1, 7), 1, (0, 3)),
                                Basic(w, w, (7, 1), 1, (3, 0)), Basic(w, w, 3, 2))
        self.out = ch(320, f) + w + cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b3(x), self.b7(x), F.max_pool2d(x, 3, 2)], 1)


class InceptionE(nn.Module):
    def __init__(self, cin: int, f: float):
        super().__init__()
        w = ch(384, f)
        self.b1 = Basic(cin, ch(320, f), 1)
        self.b3 = Basic(cin, w, 1)
        self.b3a, self.b3b = Basic(w, w, (1, 3), 1, (0, 1)), Basic(w, w, (3, 1), 1, (1, 0))
        self.d1 = Basic(cin, ch(448, f), 1)
        self.d2 = Basic(ch(448, f), w, 3, 1, 1)
        self.d3a, self.d3b = Basic(w, w, (1, 3), 1, (0, 1)), Basic(w, w, (3, 1), 1, (1, 0))
        self.pool = Basic(cin, ch(192, f), 1)
        self.out = ch(320, f) + 4 * w + ch(192, f)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, d = self.b3(x), self.d2(self.d1(x))
        return torch.cat([self.b1(x), self.b3a(b), self.b3b(b), self.d3a(d), self.d3b(d),
                          pool_branch(x, self.pool)], 1)


class Inception3(nn.Module):
    """torchvision's Inception3 (transform_input false), its auxiliary classifier always
    run; the modules defined in the spec's order of creation (the aux head last)."""

    def __init__(self, classes: int, f: float):
        super().__init__()
        self.stem = nn.Sequential(Basic(3, ch(32, f), 3, 2), Basic(ch(32, f), ch(32, f), 3),
                                  Basic(ch(32, f), ch(64, f), 3, 1, 1), nn.MaxPool2d(3, 2),
                                  Basic(ch(64, f), ch(80, f), 1), Basic(ch(80, f), ch(192, f), 3),
                                  nn.MaxPool2d(3, 2))
        blocks: list[nn.Module] = []
        c = ch(192, f)
        for pool in (32, 64, 64):
            blocks.append(InceptionA(c, ch(pool, f), f))
            c = blocks[-1].out  # type: ignore[assignment]
        blocks.append(InceptionB(c, f))
        c = blocks[-1].out  # type: ignore[assignment]
        for c7 in (128, 160, 160, 192):
            blocks.append(InceptionC(c, ch(c7, f), f))
            c = blocks[-1].out  # type: ignore[assignment]
        self.grid17 = nn.Sequential(*blocks)
        aux_in = c
        late: list[nn.Module] = [InceptionD(c, f)]
        c = late[-1].out  # type: ignore[assignment]
        for _ in range(2):
            late.append(InceptionE(c, f))
            c = late[-1].out  # type: ignore[assignment]
        self.late = nn.Sequential(*late)
        self.fc = nn.Linear(c, classes)
        self.aux = nn.Sequential(nn.AvgPool2d(5, 3), Basic(aux_in, ch(128, f), 1),
                                 Basic(ch(128, f), ch(768, f), 5), nn.AdaptiveAvgPool2d(1),
                                 nn.Flatten(), nn.Linear(ch(768, f), classes))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        g = self.grid17(self.stem(x))
        logits = self.fc(torch.flatten(F.adaptive_avg_pool2d(self.late(g), 1), 1))
        return logits, self.aux(g)


def copy_weights(net: nn.Module, hand: nn.Module) -> None:
    """The compiled network's weights into ``hand`` in order (BN statistics randomised
    first, so that where each sits matters)."""
    gen = torch.Generator().manual_seed(0)
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            for t, low, high in ((m.running_mean, -0.5, 0.5), (m.running_var, 0.5, 2.0),
                                 (m.weight, 0.5, 1.5), (m.bias, -0.5, 0.5)):
                t.data.copy_(torch.rand(t.shape, generator=gen) * (high - low) + low)
    ours = [v for k, v in net.state_dict().items() if "num_batches" not in k]
    theirs = [k for k in hand.state_dict() if "num_batches" not in k]
    assert [v.shape for v in ours] == [hand.state_dict()[k].shape for k in theirs]
    hand.load_state_dict(dict(zip(theirs, ours, strict=True)), strict=False)


def test_inception_v3_has_torchvisions_count() -> None:
    model = ssnc.load(SPECS / "inception_v3.ssn").model()
    assert model.total_params == sum(p.numel() for p in Inception3(1000, 1.0).parameters())
    assert model.total_params == 27_161_264
    assert model.ir.output_names == ("logits", "aux")


def test_inception_v3_equals_torchvisions_layout_at_narrow_width() -> None:
    """Both outputs, in PyTorch and in ONNX Runtime (both forms), at 299 x 299 (the size at
    which the auxiliary head's 5x5 convolution fits) and an eighth of the width."""
    import onnxruntime as ort

    model = ssnc.load(SPECS / "inception_v3.ssn").model(classes=7, width=0.125)
    net, hand = model.to_torch().eval(), Inception3(7, 0.125).eval()
    copy_weights(net, hand)
    x = np.random.default_rng(0).standard_normal((2, 3, 299, 299)).astype(np.float32)
    with torch.no_grad():
        want = [t.numpy() for t in hand(torch.from_numpy(x))]
        got = net(torch.from_numpy(x))
    for ours, theirs in zip((got.logits, got.aux), want, strict=True):
        np.testing.assert_allclose(ours.numpy(), theirs, rtol=1e-4, atol=1e-5)
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "w.pt"
        torch.save(net.state_dict(), weights)
        for flat in (True, False):
            proto = model.to_onnx(flat=flat, weights=weights)
            sess = ort.InferenceSession(proto.SerializeToString(),
                                        providers=["CPUExecutionProvider"])
            assert [o.name for o in sess.get_outputs()] == ["logits", "aux"]
            for ours, theirs in zip(sess.run(None, {"input": x}), want, strict=True):
                np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)


class Chomp(nn.Module):
    """locuslab/TCN's Chomp1d: the padding's last positions cut off."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, :-self.size].contiguous()


class TemporalBlock(nn.Module):
    """locuslab/TCN's block (without its weight normalisation)."""

    def __init__(self, cin: int, cout: int, k: int, dilation: int):
        super().__init__()
        pad = (k - 1) * dilation
        self.net = nn.Sequential(nn.Conv1d(cin, cout, k, padding=pad, dilation=dilation),
                                 Chomp(pad), nn.ReLU(), nn.Dropout(0.05),
                                 nn.Conv1d(cout, cout, k, padding=pad, dilation=dilation),
                                 Chomp(pad), nn.ReLU(), nn.Dropout(0.05))
        self.downsample = nn.Conv1d(cin, cout, 1) if cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res = x if self.downsample is None else self.downsample(x)
        return F.relu(self.net(x) + res)


class TCN(nn.Module):
    def __init__(self, cin: int, widths: list[int], k: int, classes: int):
        super().__init__()
        self.blocks = nn.Sequential(*(TemporalBlock(cin if i == 0 else widths[i - 1], w, k,
                                                    2 ** i) for i, w in enumerate(widths)))
        self.linear = nn.Linear(widths[-1], classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.linear(self.blocks(x).transpose(1, 2)).transpose(1, 2)
        return out


def test_tcn_equals_the_authors_layout_at_any_length() -> None:
    """66,510 parameters as shipped; at a narrow size, PyTorch equals the hand-written TCN,
    and ONNX (its length symbolic) equals both at T = 1, 17 and 1000."""
    import onnxruntime as ort

    assert ssnc.load(SPECS / "tcn.ssn").model().total_params == 66_510 == sum(
        p.numel() for p in TCN(1, [25] * 8, 7, 10).parameters())
    model = ssnc.load(SPECS / "tcn.ssn").model(inputs=3, widths=[6, 8, 8], k=3)
    hand = TCN(3, [6, 8, 8], 3, 10).eval()
    net = model.to_torch().eval()
    # the shortcut's 1x1 conv is made after the block's convolutions, as the authors' order
    hand.load_state_dict(dict(zip(hand.state_dict(), net.state_dict().values(), strict=True)))
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "w.pt"
        torch.save(net.state_dict(), weights)
        protos = [model.to_onnx(flat=flat, weights=weights) for flat in (True, False)]
        for proto in protos:
            dims = proto.graph.input[0].type.tensor_type.shape.dim
            assert [d.dim_param or d.dim_value for d in dims] == ["N", 3, "T"]
        for steps in (1, 17, 1000):
            x = np.random.default_rng(steps).standard_normal((2, 3, steps)).astype(np.float32)
            with torch.no_grad():
                want = hand(torch.from_numpy(x)).numpy()
                np.testing.assert_allclose(net(torch.from_numpy(x)).numpy(), want, rtol=1e-4,
                                           atol=1e-5)
            for proto in protos:
                sess = ort.InferenceSession(proto.SerializeToString(),
                                            providers=["CPUExecutionProvider"])
                np.testing.assert_allclose(sess.run(None, {"input": x})[0], want, rtol=1e-4,
                                           atol=1e-5)


def test_a_causal_stack_never_reads_the_future() -> None:
    net = ssnc.load(SPECS / "tcn.ssn").model(widths=[4, 4], k=3).to_torch().eval()
    x = torch.randn(1, 1, 12)
    later = x.clone()
    later[..., 7:] = torch.randn(5)
    with torch.no_grad():
        a, b = net(x), net(later)
    torch.testing.assert_close(a[..., :7], b[..., :7])
    assert not torch.allclose(a[..., 7:], b[..., 7:])


VOLUME = """
model c3d(classes = 3) : tensor[2, 6, 8, 8] =
    conv(4, 3) >> bn >> relu >> maxpool(2)
    >> conv(6, (1, 3, 3), pad = (0, 1, 1), bias = false) >> bn >> relu
    >> conv_transpose(4, 2, 2) >> upsample(size = [6, 10, 8], mode = "trilinear")
    >> avgpool((1, 2, 2)) >> gap >> linear(classes)
"""


class C3D(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv3d(2, 4, 3, padding=1), nn.BatchNorm3d(4)
        self.conv2 = nn.Conv3d(4, 6, (1, 3, 3), padding=(0, 1, 1), bias=False)
        self.bn2 = nn.BatchNorm3d(6)
        self.up = nn.ConvTranspose3d(6, 4, 2, 2)
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool3d(F.relu(self.bn1(self.conv1(x))), 2)
        x = self.up(F.relu(self.bn2(self.conv2(x))))
        x = F.interpolate(x, size=(6, 10, 8), mode="trilinear", align_corners=False)
        out: torch.Tensor = self.fc(F.avg_pool3d(x, (1, 2, 2)).mean((2, 3, 4)))
        return out


def test_a_volume_network_equals_the_hand_written_one() -> None:
    model = ssnc.loads(VOLUME, "c3d.ssn").model()
    assert "[N,2,6,8,8]{NCDHW}" in model.format_ir()
    x = np.random.default_rng(0).standard_normal((3, 2, 6, 8, 8)).astype(np.float32)
    equals_hand_written(model, C3D(), x)


def test_bn_on_a_sequence_normalises_its_features_not_time() -> None:
    """`bn` reads the channel axis wherever it is: a fixed-length sequence [N, T, C] is
    normalised per feature, with statistics over the batch and the steps."""
    net = ssnc.loads("model m : sequence[4, 8] = bn", "m.ssn").model().to_torch()
    x = torch.randn(5, 8, 4) * torch.arange(1.0, 5.0)
    want = F.batch_norm(x.transpose(1, 2), None, None, training=True).transpose(1, 2)
    torch.testing.assert_close(net.train()(x), want)


def test_roles_survive_fixing_a_length() -> None:
    text = ssnc.loads("model m : sequence[64, 16] = mha(4, 64) >> linear(8)", "m.ssn").model(
    ).format_ir()
    assert "%input : f32[N,16,64]{NTC}" in text
    sig = ssnc.loads("model m : tensor[64, 16] = conv(8)", "m.ssn").model().format_ir()
    assert "%input : f32[N,64,16]{NCL}" in sig and "f32[N,8,16]{NCL}" in sig


@pytest.mark.parametrize("body,needle,column", [
    ("tensor[3, 8, 8] = conv(4, (1, 2, 3))",
     "conv's `k` gives 3 values, but [N,3,8,8]{NCHW} has 2 axes to slide over (height (H), "
     "width (W))", 29),
    ("tensor[3, 8, 8] = conv(4, 3, dilation = 0)",
     "`conv`'s `dilation` (kernel dilation) must be positive (an integer)", 40),
    ("tensor[3, 8, 8] = conv(4, 3, dilation = (1, 0))", "got [1, 0]", 40),
    ("tensor[3, 8, 8] = conv(4, 3, pad = \"left\")", "a mode (\"same\", \"valid\", \"causal\")",
     40),
    ("tensor[3, 8, 8] = conv(4, 3, pad = \"causal\")",
     "conv's causal padding needs a time axis or a single axis to slide over", 29),
    ("signal[3] = pad(2, axis = \"N\")", "pad cannot act on the batch axis of [N,3,T]{NCT}", 23),
    ("tensor[16] = conv(4, 3, pad = \"causal\")",
     "conv reads a batch axis, a channel axis and 1 to 3 spatial or time axes", 24),
    ("sequence[8, 8] = (x) => x + permute([1, 0])(x)",
     "inputs give axis 1 different roles: time (T) in [N,8,8]{NTC}, channel (C) in "
     "[N,8,8]{NCT}", 35),
    ("tensor[3, 8, 8] = conv(4) >> linear(10)",
     "linear maps the last axis, but the last axis of [N,4,8,8]{NCHW} is its width (W) axis",
     40),
    ("sequence[8] = reshape([2, 4]) >> bn", "bn normalises the channel axis (C)", 44),
    ("signal[3] = conv(4, 3, 2)", "conv with stride 2 over the time (T) axis of symbolic "
     "size `T`", 23),
])
def test_bad_axes_are_diagnostics(body: str, needle: str, column: int, tmp_path: Path) -> None:
    stderr = compile_refused(tmp_path, f"model m : {body}\n")
    assert needle in stderr and f"m.ssn:1:{column}:" in stderr, stderr


def test_an_error_inside_the_standard_library_points_at_the_users_call(tmp_path: Path) -> None:
    stderr = compile_refused(tmp_path, "model m : tensor[8, 4, 4] = mha(2, 8)\n")
    assert "<stdlib>/attention.ssn" in stderr
    assert "in `mha(heads=2, dim=8, causal=false, drop=0.0)`, applied from here" in stderr
    assert "m.ssn:1:29)" in stderr


def test_a_signal_exports_to_torch_with_its_length_dynamic() -> None:
    """`torch.export` marks the time axis of `signal[C]` ([N, C, T], time last) dynamic."""
    from ssnc.backends.torch.module import export_program

    model = ssnc.load(SPECS / "tcn.ssn").model(widths=[4, 4], k=3)
    net = model.to_torch().eval()
    program = export_program(model.ir, net)
    for steps in (2, 33):
        x = torch.randn(3, 1, steps)
        with torch.no_grad():
            torch.testing.assert_close(program.module()(x), net(x))


@pytest.mark.parametrize("opset", [13, 17, 18, 21])
def test_reductions_over_time_in_every_opset(opset: int) -> None:
    """`reduce_mean("T")` pools a sequence of any length; ONNX's Reduce* take their axes as
    an attribute before opset 18 (13 for ReduceSum) and as an input from then on."""
    import onnxruntime as ort

    m = ssnc.loads('model m : sequence[4] = (x) => concat(reduce_mean("T")(x), '
                   'reduce_max("T", keep = true)(x) >> squeeze("T"), '
                   'reduce_sum("T")(x), axis = -1)', "m.ssn").model()
    assert "f32[N,4]{NC} = reduce_mean[axis=1](%input)" in m.format_ir()
    proto = m.to_onnx(opset=opset)
    x = torch.randn(2, 7, 4)
    want = torch.cat([x.mean(1), x.amax(1), x.sum(1)], -1)
    with torch.no_grad():
        torch.testing.assert_close(m.to_torch()(x), want)
    got = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]
                               ).run(None, {"input": x.numpy()})[0]
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-6)


def test_a_reduction_over_the_batch_axis_is_a_diagnostic(tmp_path: Path) -> None:
    stderr = compile_refused(tmp_path, 'model m : sequence[4] = reduce_mean("N")\n')
    assert "reduce_mean cannot act on the batch axis of [N,T,4]{NTC}" in stderr
    assert "m.ssn:1:25:" in stderr
