"""The basic residual block of He et al. 2016: two 3x3 conv-BN layers and a shortcut, used by the
CIFAR ResNets (``resnet_cifar.py``) and the embedding ResNet's trunk (``embedding.py``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SHORTCUTS = ("pad", "projection")


class BasicBlock(nn.Module):
    """``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``; x: (N, in_planes, H, W) ->
    (N, planes, H / stride, W / stride).

    Where the shape changes (``stride`` > 1 or ``planes`` != ``in_planes``) the shortcut is
    ``pad`` (option A of the paper, no parameters: subsampled and zero-padded in channels, the
    CIFAR ResNets) or ``projection`` (option B: 1x1 conv-BN under torchvision's module name
    ``downsample``, so torchvision weights load); otherwise it is the identity. Module names
    (``conv1``, ``bn1``, ``conv2``, ``bn2``) are torchvision's.
    """

    def __init__(self, in_planes: int, planes: int, stride: int, shortcut: str = "pad"):
        super().__init__()
        if shortcut not in SHORTCUTS:
            raise ValueError(f"residual block shortcut={shortcut!r}; expected one of {list(SHORTCUTS)}")
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.stride, self.extra = stride, planes - in_planes
        reshapes = stride != 1 or in_planes != planes
        self.downsample = None
        if reshapes and shortcut == "projection":
            self.downsample = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False),
                                            nn.BatchNorm2d(planes))

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.downsample is not None:
            return self.downsample(x)
        if self.stride == 1 and self.extra == 0:
            return x
        x = x[:, :, ::self.stride, ::self.stride]
        return F.pad(x, (0, 0, 0, 0, self.extra // 2, self.extra - self.extra // 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))
