"""specs/unet.ssn against a hand-written PyTorch U-Net in the layout of the widely used port
(milesial/Pytorch-UNet), on copied weights; narrow and at 64 x 64 here, the published count
at full size."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import ssnc
from tests.conftest import SPECS, equals_hand_written, ort_output


class DoubleConv(nn.Sequential):
    def __init__(self, cin: int, cout: int, mid: int | None = None):
        mid = mid or cout
        super().__init__(nn.Conv2d(cin, mid, 3, padding=1, bias=False), nn.BatchNorm2d(mid),
                         nn.ReLU(), nn.Conv2d(mid, cout, 3, padding=1, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU())


class Up(nn.Module):
    def __init__(self, cin: int, cout: int, bilinear: bool):
        super().__init__()
        if bilinear:
            self.up: nn.Module = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
            self.conv = DoubleConv(cin, cout, cin // 2)
        else:
            self.up = nn.ConvTranspose2d(cin, cin // 2, 2, stride=2)
            self.conv = DoubleConv(cin, cout)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([x2, self.up(x1)], 1))


class UNet(nn.Module):
    """The port's U-Net with its base width a parameter (64 there)."""

    def __init__(self, cin: int, classes: int, bilinear: bool, w: int = 64):
        super().__init__()
        f = 2 if bilinear else 1
        self.inc = DoubleConv(cin, w)
        self.downs = nn.ModuleList(nn.Sequential(nn.MaxPool2d(2), DoubleConv(a, b))
                                   for a, b in ((w, 2 * w), (2 * w, 4 * w), (4 * w, 8 * w),
                                                (8 * w, 16 * w // f)))
        self.ups = nn.ModuleList(Up(a, b, bilinear)
                                 for a, b in ((16 * w, 8 * w // f), (8 * w, 4 * w // f),
                                              (4 * w, 2 * w // f), (2 * w, w)))
        self.outc = nn.Conv2d(w, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.inc(x)]
        for down in self.downs:
            skips.append(down(skips[-1]))
        x = skips.pop()
        for up in self.ups:
            x = up(x, skips.pop())
        out: torch.Tensor = self.outc(x)
        return out


@pytest.mark.parametrize("bilinear", [False, True], ids=["transposed", "bilinear"])
def test_unet_equals_the_hand_written_port(bilinear: bool) -> None:
    model = ssnc.load(SPECS / "unet.ssn").model(bilinear=bilinear, width=8, size=64)
    x = np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32)
    equals_hand_written(model, UNet(3, 2, bilinear, 8), x)


def test_unet_counts_and_takes_any_multiple_of_16() -> None:
    """The port's 31,037,698 parameters (17,263,042 bilinear, as the hand-written one
    counts them); with symbolic H and W, a 48 x 80 image runs."""
    spec = ssnc.load(SPECS / "unet.ssn")
    assert spec.model().total_params == 31_037_698
    for bilinear in (False, True):
        hand = UNet(3, 2, bilinear)
        assert spec.model(bilinear=bilinear).total_params == sum(
            p.numel() for p in hand.parameters())
    narrow = spec.model(width=4, size=32).to_onnx(symbolic_hw=True)
    assert ort_output(narrow, np.zeros((1, 3, 48, 80), np.float32)).shape == (1, 2, 48, 80)


def test_a_recursive_level_is_not_named_like_a_fractal_column() -> None:
    """A level's concat joins a skip with what was computed from it: recursion, not parallel
    columns, so no `col`/`join` names and no `--column`."""
    model = ssnc.load(SPECS / "unet.ssn").model(width=4, size=32)
    assert not model.ir.fractals()
    keys = list(model.ir.tensors())
    assert "level.level.level.level.double_conv1.conv1.weight" in keys, keys[:40]
    assert not any(".col" in k or "join" in k for k in keys)
    with pytest.raises(ssnc.SsnError, match="has no fractal blocks"):
        model.column(1)
