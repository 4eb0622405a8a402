"""The plugin's own tests: its op checked by ssnc's harness at several settings, and equal
to BlurPool as its paper's code computes it (written here, on the same filter)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from ssnc_blurpool import blurpool

import ssnc
from ssnc.testing import check_op

SPEC = Path(__file__).parents[1] / "specs" / "blur_cnn.ssn"


@pytest.mark.parametrize("attrs", [{}, {"stride": 1}, {"k": 1}, {"k": 2, "stride": 3},
                                   {"k": 5, "pad": "zero"}, {"k": 4}])
def test_check_op(attrs: dict[str, object]) -> None:
    report = check_op(blurpool, "tensor[3, 9, 10]", **attrs)
    assert report.ok and not [c for c in report.checks if c.status == "skipped"], report


def reference(x: torch.Tensor, k: int, stride: int) -> torch.Tensor:
    """antialiased-cnns' BlurPool (Zhang 2019): reflect-pad [(k-1)//2, ceil((k-1)/2)], then
    a depthwise conv with the normalised outer product of binomial row k - 1, strided."""
    row = torch.tensor([float(math.comb(k - 1, i)) for i in range(k)])
    kernel = (row[:, None] * row[None, :]) / row.sum() ** 2
    weight = kernel[None, None].repeat(x.shape[1], 1, 1, 1)
    pads = [(k - 1) // 2, -(-(k - 1) // 2)] * 2
    return F.conv2d(F.pad(x, pads, mode="reflect"), weight, stride=stride, groups=x.shape[1])


@pytest.mark.parametrize(("k", "stride"), [(3, 2), (5, 2), (2, 2), (4, 1)])
def test_equals_the_papers_blurpool(k: int, stride: int) -> None:
    model = ssnc.loads(f"model m : tensor[4, 12, 12] = blurpool(stride = {stride}, k = {k})"
                       ).model()
    net = model.to_torch().eval()
    x = torch.randn(2, 4, 12, 12)
    with torch.no_grad():
        torch.testing.assert_close(net(x), reference(x, k, stride))


def test_a_shifted_input_changes_the_output_less_than_strided_pooling() -> None:
    """The point of the op: one pixel of shift moves a blurred downsampling less."""
    blurred = ssnc.loads("model m : tensor[1, 32, 32] = maxpool(2, stride = 1) >> "
                         "blurpool(stride = 2)").model().to_torch().eval()
    strided = ssnc.loads("model m : tensor[1, 32, 32] = maxpool(2, stride = 2)"
                         ).model().to_torch().eval()
    x = torch.zeros(1, 1, 33, 33)
    x[..., ::4, :] = 1.0  # stripes
    with torch.no_grad():
        def moved(net: torch.nn.Module) -> float:
            a, b = net(x[..., :32, :32]), net(x[..., 1:, 1:])
            return float((a - b).abs().mean())
        assert moved(blurred) < moved(strided)


def test_the_example_spec_compiles_and_counts_its_buffers() -> None:
    model = ssnc.load(SPEC).model()
    assert model.total_params == 5_514
    assert [k for k in model.to_torch().state_dict() if k.endswith("filter")] == \
        ["down1.blurpool.filter", "down2.blurpool.filter"]
