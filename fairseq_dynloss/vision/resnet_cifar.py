"""CIFAR ResNets of He et al. 2016 (Sec. 4.2): depth 6n+2, widths 16/32/64, option-A shortcuts."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .residual_block import BasicBlock  # option-A (zero-padding) shortcuts


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for 32x32 images: ResNet-8 (n=1), -20 (n=3, 0.27M), -32 (n=5, 0.46M).

    Args:
        depth: 6n+2.
        num_outputs: classes (0: no head; 64 features come out).
        in_channels: image channels.
    """

    def __init__(self, depth: int, num_outputs: int, in_channels: int = 3):
        super().__init__()
        if (depth - 2) % 6 or depth < 8:
            raise ValueError(f"CIFAR ResNet depth={depth}; expected 6n+2 >= 8 (8, 20, 32, 44, 56, 110)")
        blocks = (depth - 2) // 6
        self.conv = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        stages, in_planes = [], 16
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            for index in range(blocks):
                stages.append(BasicBlock(in_planes, planes, stride if index == 0 else 1))
                in_planes = planes
        self.stages = nn.Sequential(*stages)
        self.feature_dim = 64
        self.head = nn.Linear(64, num_outputs) if num_outputs else nn.Identity()
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(F.relu(self.bn(self.conv(x))))
        return self.head(F.adaptive_avg_pool2d(x, 1).flatten(1))
