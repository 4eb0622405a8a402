"""A hand-written PyTorch Hyper-WRN (Ha, Dai & Le 2016), as a practitioner would write it from
docs/reference.md: one `HyperNetwork` module (two linear maps), an embedding parameter per
generated layer, the kernel assembled with `view`/`permute` and applied with `F.conv2d`.
The baseline of bench/bench_hyper.py; `load_from` takes the compiled model's tensors, so
both compute the same."""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn


class HyperNetwork(nn.Module):
    """z [tiles, z_dim] -> kernel tiles: a_i = W_i z + B_i, K_i = <W_out, a_i> + B_out."""

    def __init__(self, k: int = 3, tile: int = 16, z_dim: int = 64):
        super().__init__()
        self.k, self.tile, self.z_dim = k, tile, z_dim
        self.w1 = nn.Linear(z_dim, tile * z_dim)
        self.w2 = nn.Linear(z_dim, tile * k * k)

    def forward(self, z: torch.Tensor, w_out: int, w_in: int) -> torch.Tensor:
        t, k = self.tile, self.k
        a = self.w1(z).view(-1, t, self.z_dim)
        tiles = self.w2(a).view(w_out // t, w_in // t, t, t, k, k)  # (o, i, in, out, k, k)
        return tiles.permute(0, 3, 1, 2, 4, 5).reshape(w_out, w_in, k, k)


class HyperConv(nn.Module):
    """A bias-free 3x3 convolution whose kernel the shared hypernetwork generates."""

    def __init__(self, w_in: int, w_out: int, stride: int, tile: int, z_dim: int):
        super().__init__()
        self.w_in, self.w_out, self.stride = w_in, w_out, stride
        self.z = nn.Parameter(torch.randn(w_out // tile * (w_in // tile), z_dim))

    def forward(self, x: torch.Tensor, hyper: HyperNetwork) -> torch.Tensor:
        return F.conv2d(x, hyper(self.z, self.w_out, self.w_in), stride=self.stride, padding=1)


class Block(nn.Module):
    """WRN's pre-activation basic block with generated kernels."""

    def __init__(self, w_in: int, w: int, stride: int, tile: int, z_dim: int):
        super().__init__()
        self.bn1, self.bn2 = nn.BatchNorm2d(w_in), nn.BatchNorm2d(w)
        self.conv1 = HyperConv(w_in, w, stride, tile, z_dim)
        self.conv2 = HyperConv(w, w, 1, tile, z_dim)
        self.shortcut = (nn.Conv2d(w_in, w, 1, stride, bias=False)
                         if w_in != w or stride != 1 else None)

    def forward(self, x: torch.Tensor, hyper: HyperNetwork) -> torch.Tensor:
        a = F.relu(self.bn1(x))
        r = self.conv2(F.relu(self.bn2(self.conv1(a, hyper))), hyper)
        return r + (x if self.shortcut is None else self.shortcut(a))


class HyperWRN(nn.Module):
    """Hyper-WRN-depth-k for 32 x 32 images."""

    def __init__(self, depth: int = 40, k: int = 2, classes: int = 10, tile: int = 16,
                 z_dim: int = 64):
        super().__init__()
        self.n = (depth - 4) // 6
        self.hyper = HyperNetwork(3, tile, z_dim)
        self.conv = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        widths = [(16, 16 * k, 1), (16 * k, 32 * k, 2), (32 * k, 64 * k, 2)]
        self.groups = nn.ModuleList(
            nn.ModuleList(Block(w_in if b == 0 else w, w, stride if b == 0 else 1, tile, z_dim)
                          for b in range(self.n))
            for w_in, w, stride in widths)
        self.bn = nn.BatchNorm2d(64 * k)
        self.fc = nn.Linear(64 * k, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        for group in self.groups:
            for block in group:
                x = block(x, self.hyper)
        return self.fc(F.relu(self.bn(x)).mean((2, 3)))

    def load_from(self, state: dict[str, torch.Tensor]) -> None:
        """Copy the compiled `hyper_wrn` model's tensors (by its state_dict keys)."""
        mine: dict[str, torch.Tensor] = {"conv.weight": state["wide_resnet.conv.weight"]}
        for prefix, to in (("wide_resnet.bn", "bn"), ("wide_resnet.linear", "fc")):
            mine.update((f"{to}.{key[len(prefix) + 1:]}", v) for key, v in state.items()
                        if key.startswith(prefix + "."))
        generator = next(k for k in state if k.endswith("hyper_generator.linear1.weight"))
        base = generator[:-len("linear1.weight")]
        for layer, to in (("linear1", "w1"), ("linear2", "w2")):
            for role in ("weight", "bias"):
                mine[f"hyper.{to}.{role}"] = state[f"{base}{layer}.{role}"]
        for g in range(3):
            for b in range(self.n):
                src = f"wide_resnet.wrn_group{g + 1}.wrn_block{b + 1 if self.n > 1 else ''}"
                dst = f"groups.{g}.{b}"
                for bn in ("bn1", "bn2"):
                    for role in ("weight", "bias", "running_mean", "running_var"):
                        mine[f"{dst}.{bn}.{role}"] = state[f"{src}.{bn}.{role}"]
                for i in (1, 2):
                    mine[f"{dst}.conv{i}.z"] = state[f"{src}.hyper_conv{i}.param"]
                if f"{src}.conv.weight" in state:
                    mine[f"{dst}.shortcut.weight"] = state[f"{src}.conv.weight"]
        self.load_state_dict(mine)
