"""Wide ResNet (Zagoruyko & Komodakis 2016): WRN-d-k, pre-activation blocks, 1x1 projections."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class WideBlock(nn.Module):
    """BN-ReLU-conv3x3 (-dropout) -BN-ReLU-conv3x3, with a 1x1 projection when the shape changes."""

    def __init__(self, in_planes: int, planes: int, stride: int, dropout: float):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.dropout = dropout
        self.projection = (nn.Conv2d(in_planes, planes, 1, stride, bias=False)
                           if stride != 1 or in_planes != planes else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = F.relu(self.bn1(x))
        out = self.conv1(pre)
        out = F.dropout(F.relu(self.bn2(out)), self.dropout, self.training)
        out = self.conv2(out)
        return out + (x if self.projection is None else self.projection(pre))


class WideResNet(nn.Module):
    """WRN-depth-widen for 32x32 images; WRN-28-10 has 36.5M parameters.

    Args:
        depth: 6n+4 (28: n=4).
        widen: width multiplier k.
        num_outputs: classes (0: no head).
        dropout: dropout between the convolutions of a block (0.3 in the paper's best runs).
    """

    def __init__(self, depth: int = 28, widen: int = 10, num_outputs: int = 10,
                 dropout: float = 0.0, in_channels: int = 3):
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"Wide ResNet depth={depth}; expected 6n+4 (16, 22, 28, 40)")
        blocks = (depth - 4) // 6
        widths = [16, 16 * widen, 32 * widen, 64 * widen]
        self.conv = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        layers, in_planes = [], widths[0]
        for planes, stride in zip(widths[1:], (1, 2, 2)):
            for index in range(blocks):
                layers.append(WideBlock(in_planes, planes, stride if index == 0 else 1, dropout))
                in_planes = planes
        self.blocks = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(in_planes)
        self.feature_dim = in_planes
        self.head = nn.Linear(in_planes, num_outputs) if num_outputs else nn.Identity()
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn(self.blocks(self.conv(x))))
        return self.head(F.adaptive_avg_pool2d(x, 1).flatten(1))
