"""A smoothed dev metric as a function of explicit model parameters (docs/design.md §3.2).

The L2T-DLF teacher maximises ``M~(omega_T; D_dev)`` where ``omega_T`` are the student's
weights after an unroll: tensors that are not the module's own parameters. ``model_fn``
applies the model to such weights, typically with ``torch.func.functional_call``, so the
metric is differentiable w.r.t. ``params`` (and through them w.r.t. the teacher).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Mapping, Optional

import torch

from fairseq_dynloss.metrics.candidates import sequence_logprobs
from fairseq_dynloss.metrics.expected import expected_bleu, expected_token_accuracy

METRICS = ("token_accuracy", "bleu")

ModelFn = Callable[[Dict[str, torch.Tensor], Mapping[str, Any]], torch.Tensor]


def smoothed_dev_metric(
    model_fn: ModelFn,
    params: Dict[str, torch.Tensor],
    batch: Mapping[str, Any],
    pad: int,
    metric: str = "token_accuracy",
    alpha: float = 1.0,
    eos: Optional[int] = None,
    normalize_length: bool = False,
    smooth_method: str = "exp",
    smooth_value: Optional[float] = None,
) -> torch.Tensor:
    """Mean smoothed metric of the model with weights ``params`` on a dev batch.

    Args:
        model_fn: ``model_fn(params, batch) -> lprobs``, token log-probabilities of the
            teacher-forced targets: (N, L, C) aligned with ``batch["target"]`` for
            ``token_accuracy``; (B, n, L, C) aligned with ``batch["candidates"]`` for ``bleu``.
        params: name -> tensor, e.g. the unrolled student weights.
        batch: ``"target"`` (N, L) target ids (the references for ``bleu``), and for ``bleu``
            ``"candidates"`` (B, n, L) candidate ids.
        pad: padding id.
        metric: ``"token_accuracy"`` (expected token accuracy) or ``"bleu"`` (expected BLEU).
        alpha: sharpness of the candidate distribution (``bleu``).
        eos: end-of-sentence id ignored by BLEU (``bleu``).
        normalize_length: length-normalise candidate log-probabilities (``bleu``).
        smooth_method, smooth_value: sentence-BLEU smoothing (``bleu``).

    Returns:
        Scalar, differentiable w.r.t. ``params``: accuracy in [0, 1] or BLEU in [0, 100].
    """
    if metric not in METRICS:
        raise ValueError(f"metric={metric!r}; expected one of {METRICS}")
    lprobs = model_fn(params, batch)
    if metric == "token_accuracy":
        return expected_token_accuracy(lprobs, batch["target"], pad)
    candidates = batch["candidates"]
    if lprobs.shape[:3] != candidates.shape:
        raise ValueError(
            f"model_fn returned shape {tuple(lprobs.shape)}; expected (B, n, L, C) with "
            f"(B, n, L) = {tuple(candidates.shape)} of batch['candidates']"
        )
    seq_logprobs = sequence_logprobs(
        lprobs.flatten(0, 1), candidates.flatten(0, 1), pad, normalize_length
    ).view(candidates.shape[:2])
    return expected_bleu(
        candidates, seq_logprobs, batch["target"], pad, alpha, eos, smooth_method, smooth_value
    ).mean()
