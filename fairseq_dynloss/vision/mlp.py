"""Multi-layer perceptron."""

from __future__ import annotations

import math
from typing import Sequence, Tuple

from torch import nn


class MLP(nn.Sequential):
    """Flatten -> [Linear -> ReLU] per hidden layer -> Linear head.

    The default hidden sizes (500, 300) are LeCun et al.'s 3-layer MNIST MLP.

    Args:
        input_shape: (C, H, W) of one image.
        num_outputs: classes (0: no head; ``feature_dim`` features come out).
        hidden: hidden-layer widths.
    """

    def __init__(self, input_shape: Tuple[int, ...], num_outputs: int, hidden: Sequence[int] = (500, 300)):
        layers, width = [nn.Flatten()], math.prod(input_shape)
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU(inplace=True)]
            width = size
        self.feature_dim = width
        layers.append(nn.Linear(width, num_outputs) if num_outputs else nn.Identity())
        super().__init__(*layers)
