"""ResNet in ResNet (specs/rir_cifar.ssn, the standard library's `rir_layer`): the public
ports' parameter counts, and the forward equal to a hand-written two-stream network of each
port's layout on copied random weights, in PyTorch and in ONNX Runtime (both forms)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

import ssnc
from tests.conftest import SPECS, compile_refused, equals_hand_written

CHAINER_EPS = 2e-5
"""Chainer's BatchNormalization eps, which the zero-pad port keeps."""


def pad_after(x: torch.Tensor, w: int, stride: int) -> torch.Tensor:
    """The zero-pad port's shortcut: every `stride`-th position (a 1x1 average pool), the new
    channels appended as zeros after the existing ones."""
    return F.pad(x[:, :, ::stride, ::stride], (0, 0, 0, 0, 0, w - x.shape[1]))


class TwoStream(nn.Module):
    """r' = relu(bn(W_rr r + W_tr t + shortcut(r))), t' = relu(bn(W_rt r + W_tt t)): with a
    1x1 projection and no biases (osmr's port), or with `pad_after`, biases and Chainer's eps
    (the zero-pad port)."""

    def __init__(self, a: int, b: int, stride: int, port: bool):
        super().__init__()
        self.resize = a != b or stride != 1
        self.stride, self.width = stride, b
        self.proj = nn.Conv2d(a, b, 1, stride, bias=False) if self.resize and not port else None
        eps = CHAINER_EPS if port else 1e-5
        self.rr, self.tr = (nn.Conv2d(a, b, 3, stride, 1, bias=port) for _ in range(2))
        self.bn_r = nn.BatchNorm2d(b, eps=eps)
        self.rt, self.tt = (nn.Conv2d(a, b, 3, stride, 1, bias=port) for _ in range(2))
        self.bn_t = nn.BatchNorm2d(b, eps=eps)

    def forward(self, r: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.resize:
            short = r
        elif self.proj is not None:
            short = self.proj(r)
        else:
            short = pad_after(r, self.width, self.stride)
        return (F.relu(self.bn_r(self.rr(r) + self.tr(t) + short)),
                F.relu(self.bn_t(self.rt(r) + self.tt(t))))


def _cbr(a: int, b: int, k: int, port: bool) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(a, b, k, 1, k // 2, bias=port),
                         nn.BatchNorm2d(b, eps=CHAINER_EPS if port else 1e-5), nn.ReLU())


class RiR(nn.Module):
    """The 18-layer CIFAR RiR: per-stream stems, 16 two-stream layers, a 1x1 head, GAP. The
    projection port: stages of 4, 6, 6 layers, each stage's first layer striding, head
    conv-BN. The zero-pad port: 8 blocks of 2 layers, the first widening and the second
    striding, each block's outer shortcut after its second layer, head conv-BN-ReLU."""

    BLOCKS = ((48, 1), (48, 1), (96, 2), (96, 1), (96, 1), (192, 2), (192, 1), (192, 1))

    def __init__(self, port: bool, classes: int = 10):
        super().__init__()
        self.port = port
        self.stem = nn.ModuleList(_cbr(3, 48, 3, port) for _ in range(2))
        if port:
            shapes = [(w_in, w, s) for (w_in, _), (w, s) in zip([(48, 1), *self.BLOCKS],
                                                              self.BLOCKS, strict=False)
                      for w_in, w, s in ((w_in, w, 1), (w, w, s))]
        else:
            widths = [48] * 4 + [96] * 6 + [192] * 6
            shapes = [(widths[max(i - 1, 0)], w, 2 if i in (4, 10) else 1)
                      for i, w in enumerate(widths)]
        self.layers = nn.ModuleList(TwoStream(a, b, s, port) for a, b, s in shapes)
        self.head = (_cbr(384, classes, 1, True) if port else
                     nn.Sequential(nn.Conv2d(384, classes, 1, bias=False),
                                   nn.BatchNorm2d(classes)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r, t = self.stem[0](x), self.stem[1](x)
        for i, layer in enumerate(self.layers):
            if self.port and i % 2 == 0:
                outer = r  # a RiR block's input residual stream
            r, t = layer(r, t)
            if self.port and i % 2 == 1:
                r = r + pad_after(outer, r.shape[1], outer.shape[2] // r.shape[2])
        out: torch.Tensor = self.head(torch.cat([r, t], 1)).mean((2, 3))
        return out


@pytest.mark.parametrize(("variant", "classes", "count"), [
    ("projection", 10, 9_492_980), ("projection", 100, 9_527_720),
    ("zero_pad", 10, 9_477_726), ("zero_pad", 100, 9_512_556)])
def test_rir_counts(variant: str, classes: int, count: int) -> None:
    model = ssnc.load(SPECS / "rir_cifar.ssn").model(variant=variant, classes=classes)
    assert model.total_params == count
    assert count == sum(p.numel() for p in RiR(variant == "zero_pad", classes).parameters())


@pytest.mark.parametrize("variant", ["projection", "zero_pad"])
def test_rir_equals_the_hand_written_two_stream_network(variant: str) -> None:
    model = ssnc.load(SPECS / "rir_cifar.ssn").model(variant=variant)
    hand = RiR(variant == "zero_pad")
    x = np.random.default_rng(1).standard_normal((3, 3, 32, 32)).astype(np.float32)
    equals_hand_written(model, hand, x)


def test_a_rir_stream_width_mismatch_is_a_diagnostic(tmp_path: pytest.TempPathFactory) -> None:
    err = compile_refused(tmp_path, (
        "model m : tensor[3, 8, 8] =\n"
        "    (x) => let (r, t) = rir_layer(16)(conv(16, 3)(x), conv(8, 3)(x)) in concat(r, t)\n"))
    assert "E0204" in err and "the two streams differ in width" in err
    assert ("in `rir_layer(w=16, stride=1, shortcut=\"projection\", bias=false, eps=1e-05)`, "
            "applied from here") in err
    assert "m.ssn:2:25" in err
    err = compile_refused(tmp_path, (
        "model m : tensor[3, 8, 8] =\n"
        "    (x) => let (r, t) = rir_layer(16, 2, \"pad\")(x, x) in concat(r, t)\n"))
    assert "E0204" in err and "unknown RiR shortcut" in err


def test_the_zero_pad_variant_is_the_ports_layout() -> None:
    """The three ways the port differs from option A (issue 26): new channels appended after
    the existing ones, the second layer of a resizing block striding (the first widens), and
    a head of conv-BN-ReLU; with the port's biases and Chainer's eps."""
    ir = ssnc.load(SPECS / "rir_cifar.ssn").model(variant="zero_pad").ir
    pads = [n for n in ir if n.op == "pad"]
    assert pads and all(n.attrs["before"] == 0 and n.attrs["after"] > 0 for n in pads)
    block = [n for n in ir if n.op == "conv" and n.name.startswith("stage2.rir_block1.")
             and n.attrs["k"] == 3]
    first, second = block[:4], block[4:]
    assert [n.attrs["stride"] for n in first] == [1] * 4
    assert [n.attrs["stride"] for n in second] == [2] * 4
    assert all(n.shape[1] == 96 for n in block)  # type: ignore[index]
    order = [n.op for n in ir.order() if not n.is_source]
    assert order[-4:] == ["conv", "bn", "relu", "gap"]
    assert all(n.attrs["bias"] for n in ir if n.op == "conv")
    assert {n.attrs["eps"] for n in ir if n.op == "bn"} == {2e-5}
    projection = ssnc.load(SPECS / "rir_cifar.ssn").model().ir
    assert [n.op for n in projection.order() if not n.is_source][-3:] == ["conv", "bn", "gap"]
