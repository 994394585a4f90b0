"""Self-paced learning (Kumar et al., NeurIPS 2010) with hard example weights.

``min_v sum_i v_i l_i - lambda sum_i v_i`` over ``v in {0, 1}^N`` gives ``v_i = [l_i < lambda]``:
only examples easier than the threshold lambda count; lambda grows so that harder examples
enter over training.
"""

from __future__ import annotations

import torch


def self_paced_weights(losses: torch.Tensor, threshold: float) -> torch.Tensor:
    """Hard self-paced weights ``v_i = [l_i < threshold]`` (no gradient), shape of ``losses``."""
    return (losses.detach() < threshold).to(losses.dtype)


def self_paced_loss(losses: torch.Tensor, threshold: float) -> torch.Tensor:
    """``sum_i v_i l_i / N``: the mean over the batch with hard examples zeroed.

    Args:
        losses: (N,) per-example losses.
        threshold: lambda.
    """
    return (self_paced_weights(losses, threshold) * losses).sum() / max(losses.numel(), 1)


def self_paced_threshold(epoch: int, start: float, growth: float) -> float:
    """``lambda_e = start * growth ** epoch`` (growth >= 1 lets harder examples in)."""
    if start <= 0 or growth < 1:
        raise ValueError(f"self-paced start={start}, growth={growth}; expected start > 0, growth >= 1")
    return start * growth ** epoch
