"""The dynamic loss of L2T-DLF / ALA (docs/design.md §3.1), as a pure function, in two forms:

    form="paper":  l_Phi(z, y) = - sigmoid( s * Phi[y, :] . log p(. | x) )     (the papers' form)
    form="prob":   l_Phi(z, y) = - log sum_j p_j M[j, y],  M >= 0               (losses/prob_form.py)

optionally mixed with (label-smoothed) NLL: ``a * nll + (1 - a) * l_Phi``. The prob form is
cross-entropy at M = I and forward correction at M = T (the label-noise matrix); the paper form
saturates once Phi leaves the identity (docs/investigation.md 2d, docs/loss_forms.md).
"""

from __future__ import annotations

from typing import Dict, NamedTuple, Optional, Tuple

import torch
import torch.nn.functional as F
from torch.func import functional_call

from .phi import Phi, PhiError
from .prob_form import check_prob_tensors

FORMS = ("paper", "prob")


class DynamicLossOutput(NamedTuple):
    """Per-token (or summed) terms of the dynamic loss.

    Attributes:
        loss: the training loss ``a * smoothed_nll + (1 - a) * dynamic``.
        nll_loss: plain NLL (no smoothing), for perplexity that stays comparable with CE runs.
        dynamic: the Phi part alone: ``-sigmoid(s * u)`` (paper) or ``-log (p^T M)_y`` (prob).
        sigmoid_arg: ``s * u`` per token (never reduced; for saturation diagnostics), (N,);
            zeros for the prob form, which has no sigmoid.
        phi_grad_share: with ``measure_gradient=True``, (N,) per token
            ``|(1-a) d l_Phi/dz| / (|(1-a) d l_Phi/dz| + |a d nll/dz|)`` (L2 norms of logit
            gradients): the share of the training gradient the Phi term carries next to the NLL
            mix (1 without the mix, unless l_Phi has no gradient at all); else None.
        phi_grad_ratio: with ``measure_gradient=True``, (N,) ``|d l_Phi/dz| / |d CE/dz|``: how
            hard the Phi term alone drives the logits compared with cross-entropy on the same
            token (1 for the prob form at M = I; near 0 when the paper form saturates); else None.
    """

    loss: torch.Tensor
    nll_loss: torch.Tensor
    dynamic: torch.Tensor
    sigmoid_arg: torch.Tensor
    phi_grad_share: Optional[torch.Tensor] = None
    phi_grad_ratio: Optional[torch.Tensor] = None


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
    form: str = "paper",
    measure_gradient: bool = False,
) -> DynamicLossOutput:
    """Dynamic loss for a flat batch of predictions.

    Args:
        lprobs: (N, C) log-probabilities (``log_softmax`` of the logits).
        target: (N,) class ids; entries equal to ``ignore_index`` contribute nothing.
        phi: a ``Phi`` with ``phi.num_classes == C``.
        scale: s, multiplies ``Phi[y] . log p`` inside the sigmoid (paper form). The prob form
            has no scale (a column factor of M is a constant in the loss): it must stay 1.0.
        nll_weight: a in [0, 1], weight of the NLL term.
        label_smoothing: epsilon of the NLL term (fairseq's ``label_smoothed_nll_loss``).
        ignore_index: padding id, or None.
        reduce: sum over tokens if True, else per-token (N,) tensors (zeros at ignored tokens).
        phi_tensors: optional ``{name: Tensor}`` used instead of ``phi``'s own tensors (a
            teacher's output); gradients flow into them. Same names and shapes as
            ``phi.tensors()``.
        form: ``paper`` or ``prob`` (module docstring). ``prob`` checks every call that Phi's
            tensors are finite and non-negative (``prob_form.check_prob_tensors``; one host
            synchronisation) and raises PhiError otherwise.
        measure_gradient: also return ``phi_grad_share`` and ``phi_grad_ratio`` (one extra
            backward pass through the loss on detached inputs; for diagnostics, not every update).

    Returns:
        DynamicLossOutput; per-token tensors are (N,) with zeros at ignored tokens.
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
    if form not in FORMS:
        raise PhiError(f"loss form {form!r}; expected one of {list(FORMS)}")
    if form == "prob" and scale != 1.0:
        raise PhiError(f"scale={scale} with form='prob'; the prob form has no scale (a factor on a "
                       "column of Phi only shifts the loss by a constant), leave it at 1.0")
    if phi_tensors is not None:
        phi.check_tensors(phi_tensors)
    if form == "prob":
        check_prob_tensors(phi, phi_tensors)

    if ignore_index is not None:
        keep = target.ne(ignore_index)
        # Padding ids may be any valid class; clamp keeps gather in range, mask zeroes it out.
        safe_target = target.masked_fill(~keep, 0)
        mask = keep.to(lprobs.dtype)
    else:
        # Nothing to zero; x * 1 == x, so skipping the products changes no bit, only time.
        safe_target, mask = target, None

    dynamic, sigmoid_arg = _phi_term(lprobs, safe_target, phi, form, scale, phi_tensors)
    # With nll_weight = 0 the NLL terms are reported, not trained: no autograd graph for them (the
    # loss's gradient is the same; at N = 100, C = 10 every node costs about as much as its math).
    nll, smoothed_nll = _nll_terms(lprobs.detach() if nll_weight == 0.0 else lprobs, safe_target,
                                   label_smoothing)
    if mask is not None:
        dynamic, sigmoid_arg, nll, smoothed_nll = (
            t * mask for t in (dynamic, sigmoid_arg, nll, smoothed_nll))

    if nll_weight == 0.0:
        loss = dynamic
    elif nll_weight == 1.0:
        loss = smoothed_nll
    else:
        loss = nll_weight * smoothed_nll + (1.0 - nll_weight) * dynamic

    share = ratio = None
    if measure_gradient:
        share, ratio = _gradient_shares(lprobs, safe_target, phi, form, scale, phi_tensors,
                                        nll_weight, label_smoothing)
        if mask is not None:
            share, ratio = share * mask, ratio * mask
    if reduce:
        total = loss.sum()
        return DynamicLossOutput(total, nll.sum(), total if loss is dynamic else dynamic.sum(),
                                 sigmoid_arg, share, ratio)
    return DynamicLossOutput(loss, nll, dynamic, sigmoid_arg, share, ratio)


def _phi_term(lprobs: torch.Tensor, target: torch.Tensor, phi: Phi, form: str, scale: float,
              phi_tensors: Optional[Dict[str, torch.Tensor]]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-token ``l_Phi`` (N,) and the sigmoid's argument (N,; zeros for prob), unmasked."""
    if phi_tensors is None:
        value = phi.forward(lprobs, target, form=form)  # Phi has no hooks; __call__ costs ~5 us
    else:
        value = functional_call(phi, phi_tensors, (lprobs, target), {"form": form}, strict=False)
    if form == "prob":
        return -value, torch.zeros_like(value)
    sigmoid_arg = scale * value
    return -torch.sigmoid(sigmoid_arg), sigmoid_arg


def _nll_terms(lprobs: torch.Tensor, target: torch.Tensor,
               label_smoothing: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-token NLL and label-smoothed NLL (fairseq's ``label_smoothed_nll_loss``), unmasked."""
    nll = F.nll_loss(lprobs, target, reduction="none")  # -lprobs[n, y_n]: one op, not four
    if label_smoothing == 0:
        return nll, nll
    eps_i = label_smoothing / (lprobs.size(-1) - 1)
    return nll, (1.0 - label_smoothing - eps_i) * nll + eps_i * -lprobs.sum(-1)


def _gradient_shares(lprobs, target, phi, form, scale, phi_tensors, nll_weight,
                     label_smoothing) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-token ``phi_grad_share`` and ``phi_grad_ratio`` (``DynamicLossOutput``), unmasked.

    The log-probabilities are valid logits (``log_softmax(log p) = log p``), so differentiating
    the terms recomputed from ``z = lprobs.detach()`` gives the gradients with respect to the
    network's logits. Tokens are independent, so the gradient of the sum is every token's own.
    """
    with torch.enable_grad():
        z = lprobs.detach().requires_grad_(True)
        lp = torch.log_softmax(z, dim=-1)
        tensors = None if phi_tensors is None else {k: v.detach() for k, v in phi_tensors.items()}
        dynamic, _ = _phi_term(lp, target, phi, form, scale, tensors)
        dyn_norm = torch.autograd.grad(dynamic.sum(), z, retain_graph=nll_weight > 0)[0].norm(dim=-1)
        nll_norm = torch.zeros_like(dyn_norm)
        if nll_weight > 0:
            nll_norm = torch.autograd.grad(_nll_terms(lp, target, label_smoothing)[1].sum(), z)[0].norm(dim=-1)
    # |p - e_y| formed explicitly: sum p^2 - 2 p_y + 1 cancels to noise when p_y ~ 1 in float32.
    ce_grad = lprobs.detach().exp().scatter_add(
        -1, target.unsqueeze(-1), -torch.ones_like(lprobs[:, :1]))
    ce_norm = ce_grad.norm(dim=-1)
    phi_part, nll_part = (1 - nll_weight) * dyn_norm, nll_weight * nll_norm
    total = phi_part + nll_part
    share = torch.where(total > 0, phi_part / total.clamp_min(1e-30), torch.zeros_like(total))
    ratio = torch.where(ce_norm > 0, dyn_norm / ce_norm.clamp_min(1e-30), torch.zeros_like(ce_norm))
    return share, ratio
