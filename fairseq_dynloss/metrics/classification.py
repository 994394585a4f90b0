"""Classification metrics: error rate, one-vs-rest AUCPR, expected (smoothed) accuracy."""

from __future__ import annotations

import numpy as np
import torch


def error_rate(logits: torch.Tensor, target: torch.Tensor) -> float:
    """Percentage of examples whose arg-max class is wrong.

    Args:
        logits: (N, C) scores.
        target: (N,) class ids.
    """
    if logits.size(0) != target.size(0) or logits.size(0) == 0:
        raise ValueError(f"error_rate needs N > 0 matching rows; got {tuple(logits.shape)}, {tuple(target.shape)}")
    return 100.0 * logits.argmax(1).ne(target).float().mean().item()


def aucpr_one_vs_rest(scores: torch.Tensor, target: torch.Tensor) -> float:
    """Mean over classes of the area under the precision-recall curve of "class c vs the rest"
    (scikit-learn's ``average_precision_score``), in percent.

    Args:
        scores: (N, C) class scores (logits or probabilities; only the order matters).
        target: (N,) class ids. Classes absent from ``target`` are skipped.
    """
    from sklearn.metrics import average_precision_score

    scores_np = scores.detach().float().cpu().numpy()
    target_np = target.cpu().numpy()
    values = [
        average_precision_score(target_np == c, scores_np[:, c])
        for c in range(scores_np.shape[1]) if (target_np == c).any()
    ]
    return 100.0 * float(np.mean(values))


def expected_accuracy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Smoothed accuracy ``mean_n p(y_n | x_n)``, differentiable (L2T-DLF's dev objective).

    Args:
        logits: (N, C).
        target: (N,).

    Returns:
        scalar tensor in [0, 1].
    """
    return torch.softmax(logits, dim=1).gather(1, target[:, None]).mean()
