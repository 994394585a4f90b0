"""The student-state features s_t a teacher reads (L2T-DLF, DESIGN 3.2).

Every feature is normalised to roughly [0, 1] so one teacher transfers across vocabularies and
training lengths:

====================  ===========================================================================
``progress``          t / T: student updates so far over the horizon the teacher was trained for,
                      clipped to [0, 1]
``train_loss``        EMA of the student's training NLL per token, divided by log C (1 = uniform)
``dev_loss``          last development-set NLL per token / log C (the train EMA until one exists)
``dev_metric``        last development metric in [0, 1] (token accuracy, BLEU / 100; 0 until known)
``lr_ratio``          current learning rate / peak learning rate
``bias``              constant 1
====================  ===========================================================================
"""

import math
from dataclasses import dataclass
from typing import Optional

import torch

STATE_FEATURES = ("progress", "train_loss", "dev_loss", "dev_metric", "lr_ratio", "bias")


@dataclass
class StudentState:
    """Raw training statistics of a student; ``features`` turns them into s_t.

    Attributes:
        num_updates: t.
        horizon: T, the number of updates that ``progress`` = 1 stands for (> 0).
        train_loss: EMA of training NLL per token, in nats (None before the first update).
        dev_loss: last development NLL per token, in nats (None if never evaluated).
        dev_metric: last development metric in [0, 1] (None if never evaluated).
        lr: current learning rate.
        peak_lr: the schedule's peak learning rate (> 0).
    """

    num_updates: int
    horizon: int
    train_loss: Optional[float] = None
    dev_loss: Optional[float] = None
    dev_metric: Optional[float] = None
    lr: float = 1.0
    peak_lr: float = 1.0

    def features(self, num_classes: int) -> torch.Tensor:
        """s_t as a float32 tensor of shape (len(STATE_FEATURES),)."""
        if self.horizon <= 0:
            raise ValueError(f"horizon={self.horizon}; expected a positive number of updates")
        if self.peak_lr <= 0:
            raise ValueError(f"peak_lr={self.peak_lr}; expected a positive learning rate")
        log_c = math.log(max(num_classes, 2))
        train = log_c if self.train_loss is None else self.train_loss  # unknown: as if uniform
        dev = train if self.dev_loss is None else self.dev_loss
        values = [
            min(max(self.num_updates / self.horizon, 0.0), 1.0),
            train / log_c,
            dev / log_c,
            0.0 if self.dev_metric is None else self.dev_metric,
            self.lr / self.peak_lr,
            1.0,
        ]
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"non-finite student state features {dict(zip(STATE_FEATURES, values))}")
        return torch.tensor(values, dtype=torch.float32)


class ExponentialAverage:
    """EMA with bias correction: the first value is returned exactly, not shrunk towards 0."""

    def __init__(self, decay: float = 0.9):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay={decay}; expected a value in [0, 1)")
        self.decay = decay
        self.value: Optional[float] = None

    def update(self, value: float) -> float:
        self.value = value if self.value is None else self.decay * self.value + (1 - self.decay) * value
        return self.value
