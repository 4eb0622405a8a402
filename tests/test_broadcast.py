"""Broadcasting, written down in docs/language.md: joins and `concat` line inputs up from the
last axis; a batch-free `param` broadcasts over the batch; what cannot broadcast is a
diagnostic naming both shapes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import ssnc
from tests.conftest import compile_refused


def test_a_class_token_is_put_before_every_sequence() -> None:
    """ViT's class token: `concat(param([1, D]), x, axis = "T")` is
    `torch.cat([token.expand(N, -1, -1), x], 1)`, also where T is of any length."""
    m = ssnc.loads('model m : sequence[4] = (x) => concat(param([1, 4]), x, axis = "T")',
                   "m.ssn").model()
    assert "f32[N,T+1,4]{NTC} = concat" in m.format_ir()
    net = m.to_torch().eval()
    token = net.state_dict()["param"]
    x = torch.randn(3, 5, 4)
    want = torch.cat([token.expand(3, -1, -1), x], 1)
    torch.testing.assert_close(net(x), want)


@pytest.mark.parametrize("body,needle", [
    ("(x) => concat(param([2, 3]), x, axis = \"T\")",
     "concat inputs differ outside axis 1: [2,3] vs [N,T,4]{NTC}"),
    ("(x) => concat(x, x, axis = \"T\")",
     "concat joins two axes of symbolic size along axis 1 (`T` and `T`)"),
    ("(x) => x + param([3])", "sum inputs do not match: [N,T,4]{NTC} vs [3]"),
    ("(x) => x + gap(x)", "sum inputs do not match: [N,T,4]{NTC} vs [N,4]{NC}"),
    ("(x) => concat(reduce_mean(\"T\", keep = true)(x), param([1, 5, 2]), axis = -1)",
     "concat broadcasts its inputs against one that has every other axis at full size, and "
     "none has: [N,1,4]{NTC} vs [1,5,2]"),
])
def test_what_cannot_broadcast_is_a_diagnostic(body: str, needle: str, tmp_path: Path) -> None:
    assert needle in compile_refused(tmp_path, f"model m : sequence[4] = {body}\n")


class EncoderBlock(torch.nn.Module):
    """torchvision's ViT EncoderBlock (dropouts 0)."""

    def __init__(self, dim: int, heads: int, mlp: int):
        super().__init__()
        self.ln_1 = torch.nn.LayerNorm(dim, eps=1e-6)
        self.self_attention = torch.nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ln_2 = torch.nn.LayerNorm(dim, eps=1e-6)
        self.mlp = torch.nn.Sequential(torch.nn.Linear(dim, mlp), torch.nn.GELU(),
                                       torch.nn.Linear(mlp, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.ln_1(x)
        y = x + self.self_attention(y, y, y, need_weights=False)[0]
        out: torch.Tensor = y + self.mlp(self.ln_2(y))
        return out


class ViT(torch.nn.Module):
    """torchvision's VisionTransformer, its parameters in the spec's order of creation."""

    def __init__(self, size: int, patch: int, dim: int, depth: int, heads: int, mlp: int,
                 classes: int):
        super().__init__()
        self.conv_proj = torch.nn.Conv2d(3, dim, patch, patch)
        n = (size // patch) ** 2
        # torchvision's [1, 1, dim] and [1, n + 1, dim], kept without their batch axis
        self.class_token = torch.nn.Parameter(torch.zeros(1, dim))
        self.pos_embedding = torch.nn.Parameter(torch.empty(n + 1, dim).normal_(std=0.02))
        self.layers = torch.nn.Sequential(*(EncoderBlock(dim, heads, mlp)
                                            for _ in range(depth)))
        self.ln = torch.nn.LayerNorm(dim, eps=1e-6)
        self.head = torch.nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_proj(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.class_token.expand(x.shape[0], 1, -1), x], 1)
        x = self.ln(self.layers(x + self.pos_embedding))
        out: torch.Tensor = self.head(x[:, 0])
        return out


def test_vit_b16_has_torchvisions_count() -> None:
    from tests.conftest import SPECS

    hand = ViT(224, 16, 768, 12, 12, 3072, 1000)
    assert ssnc.load(SPECS / "vit.ssn").model().total_params == 86_567_656 == sum(
        p.numel() for p in hand.parameters())
    assert ssnc.load(SPECS / "vit.ssn").model(dim=192, heads=3, mlp=768).total_params == sum(
        p.numel() for p in ViT(224, 16, 192, 12, 3, 768, 1000).parameters())  # ViT-Ti/16


def test_vit_equals_torchvisions_layout_at_a_small_size() -> None:
    """A 32 x 32 image in 8 x 8 patches, width 16, two blocks: PyTorch and ONNX Runtime (both
    forms) equal the hand-written network on copied weights."""
    import numpy as np

    from tests.conftest import SPECS, equals_hand_written

    model = ssnc.load(SPECS / "vit.ssn").model(classes=5, size=32, patch=8, dim=16, depth=2,
                                               heads=2, mlp=32)
    x = np.random.default_rng(0).standard_normal((3, 3, 32, 32)).astype(np.float32)
    equals_hand_written(model, ViT(32, 8, 16, 2, 2, 32, 5), x)


def test_stochastic_depth_drops_samples_and_scales_the_rest() -> None:
    """timm's DropPath: in training each sample's branch is 0 or x / (1 - p); in eval the
    identity; ONNX has the eval form. The usual schedule rises linearly over the blocks."""
    from tests.conftest import ort_output

    m = ssnc.loads("model m(p = 0.5) : tensor[4, 3, 3] = "
                   "seq([residual(conv(4) >> relu, drop = r) for r in depth_rates(p, 3)])",
                   "m.ssn").model()
    drops = [n.attrs["p"] for n in m.ir if n.op == "stochastic_depth"]
    assert drops == [0.25, 0.5]  # the first block's rate is 0: it has none
    single = ssnc.loads("model m : tensor[4, 3, 3] = stochastic_depth(0.5)", "m.ssn").model()
    net = single.to_torch().train()
    x = torch.ones(4000, 4, 3, 3)
    torch.manual_seed(0)
    y = net(x)
    per_sample = y.flatten(1)
    assert set(per_sample.unique().tolist()) == {0.0, 2.0}
    assert bool((per_sample == per_sample[:, :1]).all())  # one draw per sample
    assert abs(float((per_sample[:, 0] == 0).float().mean()) - 0.5) < 0.05
    net.eval()
    torch.testing.assert_close(net(x[:3]), x[:3])
    np_x = x[:3].numpy()
    assert (ort_output(single.to_onnx(), np_x) == np_x).all()
    batch = ssnc.loads('model m : tensor[4] = stochastic_depth(0.5, mode = "batch")',
                       "m.ssn").model().to_torch().train()
    out = batch(torch.ones(64, 4))
    assert out.unique().numel() == 1  # one draw for the whole batch
