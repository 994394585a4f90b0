"""Sequence-level losses over candidate translations (pure torch): REINFORCE with a baseline and
the cost-augmented softmax-margin, the baselines of L2T-DLF Table 3 (docs/design.md §3.5).

The minimum-risk loss ``-E_q[BLEU]`` itself is ``fairseq_dynloss.metrics.expected_bleu``.
Rewards are sentence BLEU on the 0..1 scale (``sentence_bleu / 100``); costs are ``1 - reward``.
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from fairseq_dynloss.metrics import sentence_bleu


def bleu_rewards(
    candidates: torch.Tensor,
    references: torch.Tensor,
    pad: int,
    eos: Optional[int] = None,
    smooth_method: str = "exp",
) -> torch.Tensor:
    """Sentence BLEU / 100 of each candidate against its source's reference (no grad).

    Args:
        candidates: (B, n, L) candidate token ids.
        references: (B, L') reference token ids.
        pad: padding id.
        eos: optional end-of-sentence id, ignored by BLEU.
        smooth_method: sentence-BLEU smoothing (``exp``, ``floor``, ``add-k``, ``none``).

    Returns:
        (B, n) float64 rewards in [0, 1].
    """
    if candidates.dim() != 3:
        raise ValueError(f"candidates has shape {tuple(candidates.shape)}; expected (batch, n, length)")
    batch, n = candidates.shape[:2]
    with torch.no_grad():
        scores = sentence_bleu(
            candidates.reshape(batch * n, -1), references.repeat_interleave(n, dim=0),
            pad, eos, smooth_method,
        )
    return scores.view(batch, n) / 100.0


def batch_average_baseline(rewards: torch.Tensor) -> torch.Tensor:
    """The mean reward of the batch, broadcast to the shape of ``rewards`` (no grad)."""
    return rewards.detach().mean().expand_as(rewards)


def reinforce_loss(
    token_logprobs: torch.Tensor, mask: torch.Tensor, advantages: torch.Tensor
) -> torch.Tensor:
    """REINFORCE surrogate ``-sum_t A_t log p(y_t | y_<t, x)`` per sequence.

    Its gradient is the policy gradient ``-(r - b) grad log p(y | x)``; the advantages are
    treated as constants.

    Args:
        token_logprobs: (N, L) log-probabilities of the sampled tokens.
        mask: (N, L) True at real tokens.
        advantages: (N,) per-sequence ``r - b`` or (N, L) per-token ``r - b_t``.

    Returns:
        (N,) surrogate losses.
    """
    if token_logprobs.shape != mask.shape:
        raise ValueError(
            f"token_logprobs has shape {tuple(token_logprobs.shape)} and mask "
            f"{tuple(mask.shape)}; expected equal"
        )
    advantages = advantages.detach().to(token_logprobs.dtype)
    if advantages.dim() == 1:
        advantages = advantages[:, None]
    return -(advantages * token_logprobs * mask).sum(dim=-1)


def baseline_regression_loss(
    predicted: torch.Tensor, rewards: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Squared error ``sum_t (b_t - r)^2`` of a learned per-token baseline, per sequence.

    Args:
        predicted: (N, L) baseline predictions b_t.
        rewards: (N,) sequence rewards (targets, no grad).
        mask: (N, L) True at real tokens.

    Returns:
        (N,) losses.
    """
    target = rewards.detach().to(predicted.dtype)[:, None]
    return ((predicted - target).pow(2) * mask).sum(dim=-1)


def softmax_margin_loss(
    scores: torch.Tensor, costs: torch.Tensor, target_index: int = -1, cost_scale: float = 1.0
) -> torch.Tensor:
    """Cost-augmented sequence-level softmax-margin (Gimpel & Smith 2010; Edunov et al. 2018).

    ``loss = -s(y*) + log sum_{y in Y} exp(s(y) + scale * cost(y))`` with ``y* = Y[target_index]``.

    Args:
        scores: (B, m) model scores s(y) (sequence log-probabilities) of the candidate set Y,
            which contains y*.
        costs: (B, m) costs, e.g. ``1 - BLEU / 100`` (no grad).
        target_index: position of y* in each row (default: last, see ``append_reference``).
        cost_scale: scale > 0 of the cost.

    Returns:
        (B,) losses, >= 0 when cost(y*) = 0.
    """
    if scores.shape != costs.shape or scores.dim() != 2:
        raise ValueError(
            f"scores has shape {tuple(scores.shape)} and costs {tuple(costs.shape)}; "
            "expected equal (batch, m)"
        )
    if not (math.isfinite(cost_scale) and cost_scale > 0):
        raise ValueError(f"cost_scale={cost_scale!r}; expected a finite number > 0")
    augmented = scores + cost_scale * costs.detach().to(scores.dtype)
    return torch.logsumexp(augmented, dim=-1) - scores[:, target_index]


def mix_with_nll(sequence_loss: torch.Tensor, nll: torch.Tensor, nll_weight: float) -> torch.Tensor:
    """``a * nll + (1 - a) * sequence_loss`` (Edunov et al. 2018's combined objective)."""
    if not 0.0 <= nll_weight <= 1.0:
        raise ValueError(f"nll_weight={nll_weight!r}; expected a value in [0, 1]")
    return nll_weight * nll + (1.0 - nll_weight) * sequence_loss
