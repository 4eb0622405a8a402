"""The baseline: FractalNet written by hand in PyTorch the way public ports write it
(PyTorch-port layout, docs/reference.md). Columns are stepped along the deepest one; each join
averages the columns that meet; drop-path computes every column and masks the dropped ones."""

from __future__ import annotations

import torch
from torch import nn


class Unit(nn.Module):
    def __init__(self, cin: int, cout: int, p: float):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.drop = nn.Dropout(p) if p > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(torch.relu(self.bn(self.conv(x))))


class FractalBlock(nn.Module):
    def __init__(self, cin: int, cout: int, columns: int, p: float):
        super().__init__()
        self.C = columns
        # columns[c] has 2^c units; c = 0 is the shallowest
        self.columns = nn.ModuleList(
            nn.ModuleList(Unit(cin if i == 0 else cout, cout, p) for i in range(2 ** c))
            for c in range(columns))

    def forward(self, x: torch.Tensor, keep: list[list[bool]] | None = None) -> torch.Tensor:
        outs = [x] * self.C
        depth = 2 ** (self.C - 1)
        join = 0
        for d in range(1, depth + 1):
            meeting = []
            for c in range(self.C):
                step = 2 ** (self.C - 1 - c)
                if d % step == 0:
                    outs[c] = self.columns[c][d // step - 1](outs[c])
                    meeting.append(c)
            if len(meeting) > 1:
                cols = [outs[c] for c in meeting]
                if keep is None:
                    joined = torch.stack(cols).mean(0)
                else:  # computed, then masked: the usual drop-path implementation
                    mask = torch.tensor(keep[join][::-1], dtype=x.dtype)
                    stacked = torch.stack(cols)
                    joined = (stacked * mask.view(-1, 1, 1, 1, 1)).sum(0) / mask.sum().clamp(min=1)
                join += 1
                for c in meeting:
                    outs[c] = joined
        return outs[0]


class FractalNet(nn.Module):
    def __init__(self, classes: int = 10, columns: int = 3,
                 widths: tuple[int, ...] = (64, 128, 256, 512, 512),
                 drops: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4)):
        super().__init__()
        cins = (3, *widths[:-1])
        self.blocks = nn.ModuleList(FractalBlock(i, o, columns, p)
                                    for i, o, p in zip(cins, widths, drops, strict=True))
        self.fc = nn.Linear(widths[-1], classes)

    def forward(self, x: torch.Tensor,
                keep: list[list[list[bool]]] | None = None) -> torch.Tensor:
        for b, block in enumerate(self.blocks):
            x = torch.max_pool2d(block(x, None if keep is None else keep[b]), 2)
        return self.fc(torch.flatten(x, 1))
