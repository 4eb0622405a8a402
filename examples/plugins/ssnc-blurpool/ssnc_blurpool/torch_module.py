"""BlurPool's PyTorch module, as ssnc's generated code builds it (with the filter as the
buffer `filter`, so that its state_dict key is the op's tensor)."""

from __future__ import annotations

import torch
from torch import nn


class BlurPool2d(nn.Module):
    """Pad, then filter each channel with the fixed binomial kernel, strided."""

    def __init__(self, channels: int, k: int = 3, stride: int = 2, pad: str = "reflect"):
        super().__init__()
        self.stride, self.k, self.mode = stride, k, "reflect" if pad == "reflect" else "constant"
        self.register_buffer("filter", torch.zeros(channels, 1, k, k))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        before, after = (self.k - 1) // 2, self.k // 2
        x = torch.nn.functional.pad(x, [before, after, before, after], mode=self.mode)
        return torch.nn.functional.conv2d(x, self.filter, stride=self.stride,
                                          groups=x.shape[1])
