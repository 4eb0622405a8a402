"""ResNet in ResNet (specs/rir_cifar.ssn, the standard library's `rir_layer`): the public
port's parameter counts, and the forward equal to a hand-written two-stream network on copied
random weights, in PyTorch and in ONNX Runtime (both forms)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

import ssnc
from tests.conftest import SPECS, compile_refused, equals_hand_written


def option_a(x: torch.Tensor, w: int, stride: int) -> torch.Tensor:
    """Subsample by `stride`, zero-pad the new channels half before and half after."""
    extra = w - x.shape[1]
    return F.pad(x[:, :, ::stride, ::stride], (0, 0, 0, 0, extra // 2, extra - extra // 2))


class TwoStream(nn.Module):
    """r' = relu(bn(W_rr r + W_tr t + shortcut(r))), t' = relu(bn(W_rt r + W_tt t))."""

    def __init__(self, a: int, b: int, stride: int, projection: bool):
        super().__init__()
        self.resize = a != b or stride != 1
        self.stride, self.width = stride, b
        self.proj = nn.Conv2d(a, b, 1, stride, bias=False) if self.resize and projection else None
        self.rr, self.tr = (nn.Conv2d(a, b, 3, stride, 1, bias=False) for _ in range(2))
        self.bn_r = nn.BatchNorm2d(b)
        self.rt, self.tt = (nn.Conv2d(a, b, 3, stride, 1, bias=False) for _ in range(2))
        self.bn_t = nn.BatchNorm2d(b)

    def forward(self, r: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.resize:
            short = r
        elif self.proj is not None:
            short = self.proj(r)
        else:
            short = option_a(r, self.width, self.stride)
        return (F.relu(self.bn_r(self.rr(r) + self.tr(t) + short)),
                F.relu(self.bn_t(self.rt(r) + self.tt(t))))


class RiR(nn.Module):
    """The 18-layer CIFAR RiR: per-stream stems, 16 two-stream layers, 1x1 conv-BN, GAP."""

    def __init__(self, zero_pad: bool, classes: int = 10):
        super().__init__()
        self.zero_pad = zero_pad
        self.stem = nn.ModuleList(nn.Sequential(nn.Conv2d(3, 48, 3, 1, 1, bias=False),
                                                nn.BatchNorm2d(48), nn.ReLU())
                                  for _ in range(2))
        widths = [48] * 4 + [96] * 6 + [192] * 6
        self.layers = nn.ModuleList(
            TwoStream(widths[max(i - 1, 0)], w, 2 if i in (4, 10) else 1, not zero_pad)
            for i, w in enumerate(widths))
        self.head = nn.Sequential(nn.Conv2d(384, classes, 1, bias=False), nn.BatchNorm2d(classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r, t = self.stem[0](x), self.stem[1](x)
        for i, layer in enumerate(self.layers):
            if self.zero_pad and i % 2 == 0:
                outer = r  # a RiR block's input residual stream
            r, t = layer(r, t)
            if self.zero_pad and i % 2 == 1:
                r = r + option_a(outer, r.shape[1], outer.shape[2] // r.shape[2])
        out: torch.Tensor = self.head(torch.cat([r, t], 1)).mean((2, 3))
        return out


@pytest.mark.parametrize(("variant", "classes", "count"), [
    ("projection", 10, 9_492_980), ("projection", 100, 9_527_720),
    ("zero_pad", 10, 9_469_940)])
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
    assert "in `rir_layer(w=16, stride=1, shortcut=\"projection\")`, applied from here" in err
    assert "m.ssn:2:25" in err
    err = compile_refused(tmp_path, (
        "model m : tensor[3, 8, 8] =\n"
        "    (x) => let (r, t) = rir_layer(16, 2, \"pad\")(x, x) in concat(r, t)\n"))
    assert "E0204" in err and "unknown RiR shortcut" in err
