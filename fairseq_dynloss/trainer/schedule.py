"""The learning-rate schedule of ``dynloss-train``, in one place: the loop's scheduler and the
L2T unrolls (their ``lr_ratio`` feature and the functional optimiser's rates) read the same
closed form, so an unrolled step has the rate of the real step it stands for.
"""

from __future__ import annotations

import bisect
import math

import torch

from .registry import ConfigError


def lr_ratio_at_epoch(optim, epoch: int, epochs: int) -> float:
    """lr / optim.lr during ``epoch`` (from 0) of a run of ``epochs`` epochs.

    Args:
        optim: the ``optim`` config (``schedule``: multistep, cosine or constant; ``milestones``
            as fractions of ``epochs``; ``gamma``).
    """
    if optim.schedule == "multistep":
        milestones = sorted({max(1, round(f * epochs)) for f in optim.milestones})
        return optim.gamma ** bisect.bisect_right(milestones, epoch)
    if optim.schedule == "cosine":
        return (1 + math.cos(math.pi * epoch / epochs)) / 2
    if optim.schedule == "constant":
        return 1.0
    raise ConfigError(f"unknown optim.schedule {optim.schedule!r}; valid: multistep, cosine, constant")


def build_scheduler(optimizer: torch.optim.Optimizer, optim, epochs: int) -> torch.optim.lr_scheduler.LambdaLR:
    """The loop's per-epoch scheduler: ``lr = optim.lr * lr_ratio_at_epoch(optim, epoch, epochs)``."""
    lr_ratio_at_epoch(optim, 0, epochs)  # an unknown schedule fails here, before any training
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: lr_ratio_at_epoch(optim, epoch, epochs))
