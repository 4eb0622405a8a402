"""Convolution in Convolution (specs/cic_cifar.ssn, the standard library's `channel_conv`):
the sparse layer equals a 1x1 convolution with a banded weight matrix, and the network
equals a hand-written one built that way, on copied weights, in PyTorch and ONNX Runtime."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

import ssnc
from tests.conftest import SPECS, equals_hand_written

CIC = SPECS / "cic_cifar.ssn"


class Banded(nn.Module):
    """A 1x1 convolution whose output channel c reads input channels c - k//2 ... only:
    the k weights of each channel put on a band of a dense [C, C] matrix."""

    def __init__(self, channels: int, k: int):
        super().__init__()
        self.k = k
        for j in range(k):  # own parameters, in order, before the bias
            self.register_parameter(f"tap{j}", nn.Parameter(torch.zeros(channels, 1, 1)))
        self.bias = nn.Parameter(torch.zeros(channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        dense = torch.zeros(c, c)
        rows = torch.arange(c)
        for j in range(self.k):
            tap = getattr(self, f"tap{j}")
            cols = rows + j - self.k // 2
            keep = (cols >= 0) & (cols < c)
            dense = dense.index_put((rows[keep], cols[keep]), tap.flatten()[keep])
        return F.conv2d(x, dense[:, :, None, None], self.bias.flatten())


class MlpConv(nn.Module):
    """A k x k convolution, then `sparse` banded layers, each with ReLU. The banded layers
    are registered first, as the compiled module holds them (the state_dict's order)."""

    def __init__(self, c_in: int, k: int, sparse: int, kc: int):
        super().__init__()
        self.sparse = nn.ModuleList(Banded(192, kc) for _ in range(sparse))
        self.conv = nn.Conv2d(c_in, 192, k, padding=k // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv(x))
        for layer in self.sparse:
            x = F.relu(layer(x))
        return x


class CiC(nn.Module):
    def __init__(self, kc: int, classes: int = 10):
        super().__init__()
        pool = [nn.MaxPool2d(3, 2, ceil_mode=True), nn.Dropout(0.5)]
        self.net = nn.Sequential(MlpConv(3, 5, 2, kc), *pool, MlpConv(192, 5, 2, kc), *pool,
                                 MlpConv(192, 3, 1, kc), nn.Conv2d(192, classes, 1), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(x).mean((2, 3))
        return out


@pytest.mark.parametrize("kc", [3, 4, 1])
def test_cic_equals_a_network_of_banded_1x1_convolutions(kc: int) -> None:
    model = ssnc.load(CIC).model(kc=kc)
    hand = CiC(kc)
    assert model.total_params == sum(p.numel() for p in hand.parameters())
    x = np.random.default_rng(kc).standard_normal((3, 3, 32, 32)).astype(np.float32)
    equals_hand_written(model, hand, x)


def test_cic_count() -> None:
    """Five sparse layers of 192 x (3 + 1) parameters where NiN has dense 1x1 layers."""
    model = ssnc.load(CIC).model()
    assert model.total_params == 1_274_122
    sparse = [r for r in model.summary(max_depth=9) if r.path.split(".")[-1].startswith(
        "channel_conv")]
    assert len(sparse) == 5 and all(r.params == 192 * 4 for r in sparse)


def test_a_sparse_layer_reads_only_its_window() -> None:
    """A change in input channel 5 moves output channels 4, 5 and 6 only (k = 3)."""
    model = ssnc.loads("model m : tensor[12, 2, 2] = channel_conv(3)\n").model()
    net = model.to_torch().eval()
    x = torch.randn(1, 12, 2, 2)
    y = x.clone()
    y[0, 5] += 1.0
    with torch.no_grad():
        moved = (net(y) - net(x)).abs().amax((0, 2, 3)) > 0
    assert moved.nonzero().flatten().tolist() == [4, 5, 6]
