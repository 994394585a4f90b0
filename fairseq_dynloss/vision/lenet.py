"""LeNet-5 (LeCun et al. 1998) with ReLU and max pooling, as in most modern re-implementations."""

from __future__ import annotations

from typing import Tuple

import torch
from torch import nn


class LeNet(nn.Module):
    """conv5(6) -> pool -> conv5(16) -> pool -> fc120 -> fc84 -> head.

    On 28x28 MNIST the first convolution pads by 2 (the paper's 32x32 input), giving the published
    61,706 parameters. Inputs smaller than 16 pixels (8x8 digits) also pad the second
    convolution so that its feature map is not empty.

    Args:
        input_shape: (C, H, W).
        num_outputs: classes (0: no head; the 84 features come out).
    """

    def __init__(self, input_shape: Tuple[int, int, int], num_outputs: int):
        super().__init__()
        channels, height, width = input_shape
        pad2 = 2 if min(height, width) < 16 else 0
        self.features = nn.Sequential(
            nn.Conv2d(channels, 6, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5, padding=pad2), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Flatten(),
        )
        with torch.no_grad():
            flat = self.features(torch.zeros(1, *input_shape)).size(1)
        self.classifier = nn.Sequential(
            nn.Linear(flat, 120), nn.ReLU(inplace=True), nn.Linear(120, 84), nn.ReLU(inplace=True),
        )
        self.feature_dim = 84
        self.head = nn.Linear(84, num_outputs) if num_outputs else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.classifier(self.features(x)))
