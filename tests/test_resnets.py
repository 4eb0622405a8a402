"""Parameter-free shortcuts and depthwise blocks: specs/resnet20_a.ssn against a hand-written
CIFAR ResNet-20 with option-A shortcuts on copied weights, and specs/mobilenetv2.ssn's
published count; both in ONNX Runtime, function and flat form."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

import ssnc
from tests.conftest import SPECS, equals_hand_written, ort_output


class Block(nn.Module):
    """The port's BasicBlock with its option-A shortcut (subsample, zero-pad channels)."""

    def __init__(self, w_in: int, w: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(w_in, w, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        self.conv2 = nn.Conv2d(w, w, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(w)
        self.pad = (w - w_in) // 2 if stride != 1 or w_in != w else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        short = x if self.pad is None else F.pad(x[:, :, ::2, ::2],
                                                 (0, 0, 0, 0, self.pad, self.pad))
        return F.relu(out + short)


class ResNet20(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        self.blocks = nn.Sequential(*(Block(a if i == 0 else b, b, s if i == 0 else 1)
                                      for a, b, s in ((16, 16, 1), (16, 32, 2), (32, 64, 2))
                                      for i in range(3)))
        self.fc = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.fc(self.blocks(F.relu(self.bn(self.conv(x)))).mean((2, 3)))
        return out


def test_resnet20_a_equals_the_hand_written_network() -> None:
    model = ssnc.load(SPECS / "resnet20_a.ssn").model()
    hand = ResNet20()
    assert model.total_params == sum(p.numel() for p in hand.parameters()) == 269_722
    x = np.random.default_rng(0).standard_normal((3, 3, 32, 32)).astype(np.float32)
    equals_hand_written(model, hand, x)


@pytest.mark.parametrize("flat", [True, False], ids=["flat", "functions"])
def test_mobilenetv2_counts_and_runs(flat: bool) -> None:
    """torchvision's 3,504,872 parameters at full size; at 32 x 32, ONNX Runtime equals
    PyTorch (depthwise convolutions, ReLU6, the inverted residuals)."""
    assert ssnc.load(SPECS / "mobilenetv2.ssn").model().total_params == 3_504_872
    model = ssnc.load(SPECS / "mobilenetv2.ssn").model(classes=10, size=32)
    net = model.to_torch().eval()
    for batch in (1, 3):
        x = np.random.default_rng(batch).standard_normal((batch, 3, 32, 32)).astype(np.float32)
        with torch.no_grad():
            want = net(torch.from_numpy(x)).numpy()
        got = ort_output(model.to_onnx(flat=flat), x)
        assert np.abs(got - want).max() <= 1e-4 * max(1.0, float(np.abs(want).max()))


def _tied_params(widths: tuple[int, ...], n: int, classes: int = 10, cin: int = 3) -> int:
    """Stem + per stage (a transition block and one tied block) + classifier."""
    def conv_bn(a: int, b: int, k: int) -> int:
        return a * b * k * k + 2 * b

    total = conv_bn(cin, widths[0], 3)
    w_in = widths[0]
    for i, w in enumerate(widths):
        projection = conv_bn(w_in, w, 1) if (i > 0 or w_in != w) else 0
        total += conv_bn(w_in, w, 3) + conv_bn(w, w, 3) + projection
        total += 2 * conv_bn(w, w, 3) if n > 1 else 0  # the tied block, once
        w_in = w
    return total + widths[-1] * classes + classes


@pytest.mark.parametrize(("widths", "n"), [((16, 32, 64), 3), ((8, 16), 5), ((8,), 1)])
def test_the_tied_resnet_counts_each_stage_once(widths: tuple[int, ...], n: int) -> None:
    spec = ssnc.load(SPECS / "resnet_rnn.ssn")
    tied = spec.model(widths=widths, n=n)
    assert tied.total_params == _tied_params(widths, n)
    untied = spec.model(widths=widths, n=n, tied=False)
    per_block = sum(2 * (w * w * 9 + 2 * w) for w in widths)
    assert untied.total_params == tied.total_params + max(n - 2, 0) * per_block
    assert spec.model().total_params == 175_258
    stages = [r.params for r in tied.summary(max_depth=1) if r.path.startswith("stage")]
    stem, classifier = 3 * 9 * widths[0] + 2 * widths[0], widths[-1] * 10 + 10
    assert len(stages) == len(widths)  # `ssnc info`'s rows: each stage's tied weights once
    assert sum(stages) == tied.total_params - stem - classifier
