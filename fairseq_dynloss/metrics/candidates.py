"""Candidate sets for expected metrics: sequence log-probabilities and the reference as a
candidate.

The candidates themselves (samples or an n-best list) come from the caller; so do the token
log-probabilities, from whatever way the caller runs the model (plain call, DDP, or
``torch.func.functional_call`` for a teacher's unrolled student).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fairseq_dynloss.metrics.tokens import check_token_matrix


def sequence_logprobs(
    lprobs: torch.Tensor, tokens: torch.Tensor, pad: int, normalize_length: bool = False
) -> torch.Tensor:
    """Log-probability of each sequence: the sum of its non-pad tokens' log-probabilities.

    Args:
        lprobs: (N, L, C) token log-probabilities (teacher-forced on ``tokens``).
        tokens: (N, L) token ids; ``pad`` positions contribute nothing.
        pad: padding id.
        normalize_length: divide by the number of non-pad tokens (at least 1).

    Returns:
        (N,) sequence log-probabilities, differentiable w.r.t. ``lprobs``.
    """
    check_token_matrix("tokens", tokens)
    if lprobs.dim() != 3 or lprobs.shape[:2] != tokens.shape:
        raise ValueError(
            f"lprobs has shape {tuple(lprobs.shape)} and tokens {tuple(tokens.shape)}; "
            "expected lprobs (N, L, C) with tokens (N, L)"
        )
    real = tokens != pad
    # Gather at a valid index for pad positions, then zero them: masking after the gather
    # keeps -inf log-probabilities at pads from turning into NaN.
    picked = lprobs.gather(-1, tokens.masked_fill(~real, 0).unsqueeze(-1)).squeeze(-1)
    total = picked.masked_fill(~real, 0.0).sum(dim=-1)
    if normalize_length:
        total = total / real.sum(dim=-1).clamp_min(1).to(total.dtype)
    return total


def append_reference(candidates: torch.Tensor, references: torch.Tensor, pad: int) -> torch.Tensor:
    """Add each source's reference as its last candidate, padding to a common length.

    Args:
        candidates: (B, n, L) candidate token ids.
        references: (B, L') reference token ids.
        pad: padding id.

    Returns:
        (B, n + 1, max(L, L')) token ids; ``[:, -1]`` is the reference.
    """
    if candidates.dim() != 3:
        raise ValueError(
            f"candidates has shape {tuple(candidates.shape)}; expected (batch, n, length)"
        )
    check_token_matrix("references", references)
    if candidates.size(0) != references.size(0):
        raise ValueError(
            f"candidates has batch size {candidates.size(0)} and references "
            f"{references.size(0)}; expected equal"
        )
    width = max(candidates.size(2), references.size(1))
    candidates = F.pad(candidates, (0, width - candidates.size(2)), value=pad)
    references = F.pad(references, (0, width - references.size(1)), value=pad)
    return torch.cat([candidates, references.unsqueeze(1)], dim=1)
