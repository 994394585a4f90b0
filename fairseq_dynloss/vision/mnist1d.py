"""The MNIST-1D reference networks (``notebooks/models.py`` of github.com/greydanus/mnist1d).

Inputs are signals (B, 1, L) with L = 40. Published test accuracies with Adam 1e-2, batch 100,
8000 steps: MLP 68 %, CNN 94 %, GRU 91 %. Parameter counts with 10 classes: MLP 15 210,
CNN 5 210, GRU 5 134.
"""

from __future__ import annotations

from typing import Tuple

import torch
from torch import nn


class Mnist1dMLP(nn.Module):
    """Linear -> ReLU -> residual [Linear -> ReLU] -> Linear: ``h = relu(W1 x)``,
    ``h = h + relu(W2 h)``, logits ``W3 h``.

    Args:
        input_shape: (1, L).
        num_outputs: classes (0: no head; ``hidden`` features come out).
        hidden: width of both hidden layers (reference: 100).
    """

    def __init__(self, input_shape: Tuple[int, int], num_outputs: int, hidden: int = 100):
        super().__init__()
        self.linear1 = nn.Linear(input_shape[0] * input_shape[1], hidden)
        self.linear2 = nn.Linear(hidden, hidden)
        self.head = nn.Linear(hidden, num_outputs) if num_outputs else nn.Identity()
        self.feature_dim = hidden

    def forward(self, signals: torch.Tensor) -> torch.Tensor:
        """signals (B, 1, L) -> logits (B, num_outputs)."""
        h = self.linear1(signals.flatten(1)).relu()
        h = h + self.linear2(h).relu()
        return self.head(h)


class Mnist1dCNN(nn.Module):
    """Three Conv1d layers of ``channels`` (kernels 5, 3, 3; stride 2; padding 1) with ReLU, then
    a linear head on the flattened (channels x 5) features.

    Args:
        input_shape: (1, L); L = 40 gives lengths 19, 10, 5.
        num_outputs: classes (0: no head).
        channels: conv width (reference: 25).
    """

    def __init__(self, input_shape: Tuple[int, int], num_outputs: int, channels: int = 25):
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv1d(input_shape[0], channels, 5, stride=2, padding=1), nn.ReLU(),
            nn.Conv1d(channels, channels, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv1d(channels, channels, 3, stride=2, padding=1), nn.ReLU())
        length = input_shape[1]
        for kernel in (5, 3, 3):
            length = (length + 2 - kernel) // 2 + 1
        self.feature_dim = channels * length
        self.head = nn.Linear(self.feature_dim, num_outputs) if num_outputs else nn.Identity()

    def forward(self, signals: torch.Tensor) -> torch.Tensor:
        """signals (B, 1, L) -> logits (B, num_outputs)."""
        return self.head(self.convs(signals).flatten(1))


class Mnist1dGRU(nn.Module):
    """A GRU over the signal's time steps (one value per step), its outputs at every step
    flattened into a linear head.

    Args:
        input_shape: (1, L).
        num_outputs: classes (0: no head).
        hidden: GRU width per direction (reference: 6).
        bidirectional: reference: True.
    """

    def __init__(self, input_shape: Tuple[int, int], num_outputs: int, hidden: int = 6,
                 bidirectional: bool = True):
        super().__init__()
        self.gru = nn.GRU(input_shape[0], hidden, batch_first=True, bidirectional=bidirectional)
        self.feature_dim = (2 if bidirectional else 1) * hidden * input_shape[1]
        self.head = nn.Linear(self.feature_dim, num_outputs) if num_outputs else nn.Identity()

    def forward(self, signals: torch.Tensor) -> torch.Tensor:
        """signals (B, 1, L) -> logits (B, num_outputs); the initial state is zero."""
        outputs, _ = self.gru(signals.transpose(1, 2))  # (B, L, directions * hidden)
        return self.head(outputs.flatten(1))
