"""DenseNet-BC (Huang et al. 2017) for CIFAR: bottleneck layers and compression 0.5."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Bottleneck(nn.Module):
    """BN-ReLU-conv1x1(4k)-BN-ReLU-conv3x3(k); output concatenated to the input."""

    def __init__(self, in_planes: int, growth: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, 4 * growth, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(4 * growth)
        self.conv2 = nn.Conv2d(4 * growth, growth, 3, 1, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.bn1(x)))
        out = self.conv2(F.relu(self.bn2(out)))
        return torch.cat([x, out], 1)


class Transition(nn.Module):
    """BN-ReLU-conv1x1 (compression) -avgpool2."""

    def __init__(self, in_planes: int, out_planes: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(in_planes)
        self.conv = nn.Conv2d(in_planes, out_planes, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(self.conv(F.relu(self.bn(x))), 2)


class DenseNetBC(nn.Module):
    """DenseNet-BC-depth with growth rate k: three dense blocks of (depth-4)/6 bottlenecks.

    DenseNet-BC (L=100, k=12) has 0.8M parameters.

    Args:
        depth: total depth, (depth - 4) divisible by 6.
        growth: growth rate k.
        num_outputs: classes (0: no head).
        reduction: transition compression theta.
    """

    def __init__(self, depth: int = 100, growth: int = 12, num_outputs: int = 10,
                 reduction: float = 0.5, in_channels: int = 3):
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"DenseNet-BC depth={depth}; expected (depth - 4) divisible by 6")
        layers_per_block = (depth - 4) // 6
        planes = 2 * growth
        modules = [nn.Conv2d(in_channels, planes, 3, 1, 1, bias=False)]
        for block in range(3):
            for _ in range(layers_per_block):
                modules.append(Bottleneck(planes, growth))
                planes += growth
            if block < 2:
                out_planes = int(planes * reduction)
                modules.append(Transition(planes, out_planes))
                planes = out_planes
        modules += [nn.BatchNorm2d(planes), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*modules)
        self.feature_dim = planes
        self.head = nn.Linear(planes, num_outputs) if num_outputs else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.adaptive_avg_pool2d(self.features(x), 1).flatten(1))
