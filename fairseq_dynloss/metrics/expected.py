"""Expected (smoothed) metrics: differentiable stand-ins for BLEU and accuracy (docs/design.md §3.2).

* ``expected_bleu`` -- ``sum_k q_k BLEU(y_k, y)`` over a candidate set, with
  ``q = softmax(alpha * log p(y_k | x))`` the model's distribution renormalised over the set
  (MRT-style; alpha sharpens or flattens it). BLEU is a constant; the gradient flows through q.
* ``expected_token_accuracy`` -- teacher-forced ``mean_t p(y_t | y_<t, x)``: cheaper, no decoding.
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from fairseq_dynloss.metrics.bleu import sentence_bleu


def candidate_weights(seq_logprobs: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """The model's distribution renormalised over each candidate set.

    Args:
        seq_logprobs: (B, n) sequence log-probabilities of n >= 1 candidates per source.
        alpha: sharpness > 0; large alpha puts all weight on the most probable candidate.

    Returns:
        (B, n) weights q, each row summing to one.
    """
    if not (isinstance(alpha, (int, float)) and math.isfinite(alpha) and alpha > 0):
        raise ValueError(f"alpha={alpha!r}; expected a finite number > 0")
    if seq_logprobs.dim() != 2:
        raise ValueError(
            f"seq_logprobs has shape {tuple(seq_logprobs.shape)}; expected (batch, n)"
        )
    if seq_logprobs.size(1) < 1:
        raise ValueError(f"number of candidates is {seq_logprobs.size(1)}; expected at least 1")
    return torch.softmax(alpha * seq_logprobs, dim=-1)


def expected_bleu(
    candidates: torch.Tensor,
    seq_logprobs: torch.Tensor,
    references: torch.Tensor,
    pad: int,
    alpha: float = 1.0,
    eos: Optional[int] = None,
    smooth_method: str = "exp",
    smooth_value: Optional[float] = None,
) -> torch.Tensor:
    """Expected sentence BLEU of each source's candidates under the renormalised model.

    Args:
        candidates: (B, n, L) candidate token ids (samples or n-best), ``pad``-padded.
        seq_logprobs: (B, n) their sequence log-probabilities (differentiable).
        references: (B, L') reference token ids.
        pad: padding id.
        alpha: sharpness > 0 of ``q = softmax(alpha * seq_logprobs)``.
        eos: optional end-of-sentence id, ignored by BLEU.
        smooth_method, smooth_value: sentence-BLEU smoothing, as ``sentence_bleu``.

    Returns:
        (B,) expected BLEU on the 0..100 scale, in the dtype of ``seq_logprobs``.
    """
    if candidates.dim() != 3:
        raise ValueError(
            f"candidates has shape {tuple(candidates.shape)}; expected (batch, n, length)"
        )
    batch, num_candidates = candidates.shape[:2]
    if tuple(seq_logprobs.shape) != (batch, num_candidates):
        raise ValueError(
            f"seq_logprobs has shape {tuple(seq_logprobs.shape)}; expected "
            f"{(batch, num_candidates)} to match candidates {tuple(candidates.shape)}"
        )
    if references.dim() != 2 or references.size(0) != batch:
        raise ValueError(
            f"references has shape {tuple(references.shape)}; expected ({batch}, length) "
            f"to match candidates {tuple(candidates.shape)}"
        )
    weights = candidate_weights(seq_logprobs, alpha)
    with torch.no_grad():
        scores = sentence_bleu(
            candidates.reshape(batch * num_candidates, -1),
            references.repeat_interleave(num_candidates, dim=0),
            pad,
            eos,
            smooth_method,
            smooth_value,
        ).view(batch, num_candidates)
    return (weights * scores.to(weights.dtype)).sum(dim=-1)


def expected_token_accuracy(lprobs: torch.Tensor, target: torch.Tensor, pad: int) -> torch.Tensor:
    """Teacher-forced expected accuracy: mean of ``p(y_t | y_<t, x)`` over non-pad targets.

    Args:
        lprobs: (..., C) token log-probabilities, e.g. (N, L, C).
        target: (...) target ids, e.g. (N, L); ``pad`` positions are ignored.
        pad: padding id.

    Returns:
        Scalar in [0, 1], differentiable w.r.t. ``lprobs``.
    """
    if lprobs.shape[:-1] != target.shape:
        raise ValueError(
            f"lprobs has shape {tuple(lprobs.shape)} and target {tuple(target.shape)}; "
            "expected lprobs (..., C) with target (...)"
        )
    real = target != pad
    if not bool(real.any()):
        raise ValueError(f"target has no tokens other than pad={pad}; expected at least one")
    picked = lprobs.gather(-1, target.masked_fill(~real, 0).unsqueeze(-1)).squeeze(-1)
    return picked.exp()[real].mean()
