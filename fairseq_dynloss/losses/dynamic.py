"""The dynamic loss of L2T-DLF / ALA (DESIGN 3.1), as a pure function.

    l_Phi(z, y) = - sigmoid( s * Phi[y, :] . log p(. | x) )

optionally mixed with (label-smoothed) NLL: ``a * nll + (1 - a) * l_Phi``.
"""

from __future__ import annotations

from typing import Dict, NamedTuple, Optional

import torch
from torch.func import functional_call

from .phi import Phi


class DynamicLossOutput(NamedTuple):
    """Per-token (or summed) terms of the dynamic loss.

    Attributes:
        loss: the training loss ``a * smoothed_nll + (1 - a) * dynamic``.
        nll_loss: plain NLL (no smoothing), for perplexity that stays comparable with CE runs.
        dynamic: the Phi part ``-sigmoid(s * u)`` alone.
        sigmoid_arg: ``s * u`` per token (never reduced; for saturation diagnostics), (N,).
    """

    loss: torch.Tensor
    nll_loss: torch.Tensor
    dynamic: torch.Tensor
    sigmoid_arg: torch.Tensor


def dynamic_loss(
    lprobs: torch.Tensor,
    target: torch.Tensor,
    phi: Phi,
    scale: float = 1.0,
    nll_weight: float = 0.0,
    label_smoothing: float = 0.0,
    ignore_index: Optional[int] = None,
    reduce: bool = True,
    phi_tensors: Optional[Dict[str, torch.Tensor]] = None,
) -> DynamicLossOutput:
    """Dynamic loss for a flat batch of predictions.

    Args:
        lprobs: (N, C) log-probabilities (``log_softmax`` of the logits).
        target: (N,) class ids; entries equal to ``ignore_index`` contribute nothing.
        phi: a ``Phi`` with ``phi.num_classes == C``.
        scale: s, multiplies ``Phi[y] . log p`` inside the sigmoid.
        nll_weight: a in [0, 1], weight of the NLL term.
        label_smoothing: epsilon of the NLL term (fairseq's ``label_smoothed_nll_loss``).
        ignore_index: padding id, or None.
        reduce: sum over tokens if True, else per-token (N,) tensors (zeros at ignored tokens).
        phi_tensors: optional ``{name: Tensor}`` used instead of ``phi``'s own tensors (a
            teacher's output); gradients flow into them. Same names and shapes as
            ``phi.tensors()``.

    Returns:
        DynamicLossOutput; ``sigmoid_arg`` is (N,) with zeros at ignored tokens.
    """
    if lprobs.dim() != 2 or target.dim() != 1 or lprobs.size(0) != target.size(0):
        raise ValueError(
            f"expected lprobs (N, C) and target (N,); got {tuple(lprobs.shape)} and "
            f"{tuple(target.shape)}"
        )
    if lprobs.size(1) != phi.num_classes:
        raise ValueError(
            f"lprobs has {lprobs.size(1)} classes but Phi has {phi.num_classes}; they must match"
        )
    if not 0.0 <= nll_weight <= 1.0:
        raise ValueError(f"nll_weight={nll_weight}; expected a value in [0, 1]")
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing={label_smoothing}; expected a value in [0, 1)")

    if ignore_index is not None:
        keep = target.ne(ignore_index)
        # Padding ids may be any valid class; clamp keeps gather in range, mask zeroes it out.
        safe_target = target.masked_fill(~keep, 0)
    else:
        keep = torch.ones_like(target, dtype=torch.bool)
        safe_target = target
    mask = keep.to(lprobs.dtype)

    if phi_tensors is None:
        u = phi.row_dot(lprobs, safe_target)
    else:
        phi.check_tensors(phi_tensors)
        u = functional_call(phi, phi_tensors, (lprobs, safe_target), strict=False)
    sigmoid_arg = scale * u * mask
    dynamic = -torch.sigmoid(sigmoid_arg) * mask

    nll = -lprobs.gather(-1, safe_target.unsqueeze(-1)).squeeze(-1) * mask
    if label_smoothing > 0:
        smooth = -lprobs.sum(-1) * mask
        eps_i = label_smoothing / (lprobs.size(-1) - 1)
        smoothed_nll = (1.0 - label_smoothing - eps_i) * nll + eps_i * smooth
    else:
        smoothed_nll = nll

    if nll_weight == 0.0:
        loss = dynamic
    elif nll_weight == 1.0:
        loss = smoothed_nll
    else:
        loss = nll_weight * smoothed_nll + (1.0 - nll_weight) * dynamic

    if reduce:
        return DynamicLossOutput(loss.sum(), nll.sum(), dynamic.sum(), sigmoid_arg)
    return DynamicLossOutput(loss, nll, dynamic, sigmoid_arg)
