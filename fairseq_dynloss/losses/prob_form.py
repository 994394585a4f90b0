"""The probability form of the dynamic loss (``form="prob"``): Phi acts on probabilities.

    l_Phi(p, y) = - log (p^T M)_y = - log sum_j p_j M[j, y],     M >= 0

with ``M = phi.prob_matrix()`` (Phi itself for ``full`` and ``diag_lowrank``; per-bucket means for
``bucketed``, ``losses/phi.py``). ``M[j, y]`` says how much predicting class j counts as
predicting the label y. The family holds two known losses exactly:

* ``M = I``: cross-entropy, ``-log p_y``;
* ``M = T``, the label-noise matrix ``T[i, j] = P(noisy j | true i)``: forward correction
  (Patrini et al. 2017), ``-log (p^T T)_y`` -- the likelihood of the noisy label under the model.

Unlike the paper form ``-sigmoid(s Phi[y] . log p)`` there is no sigmoid to saturate: an
off-diagonal entry multiplies a probability in [0, 1], not a log-probability of about -20, so
moving Phi changes the gradient smoothly instead of switching it off (docs/loss_forms.md).
Scaling a column of M adds a constant to the loss of that label and changes no gradient, so
there is no scale s: callers pass none (``dynamic_loss`` refuses one).

Learners keep M >= 0 by construction; ``phi_from_logits`` is such a map for ``full``.
"""

from __future__ import annotations

from typing import Callable, Dict, Optional

import torch

from .full_col_dot import full_log_col_dot
from .lowrank_col_dot import lowrank_col_dot
from .phi import FullPhi, Phi, PhiError


def log_col_dot(phi: Phi, lprobs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``log (p^T M)_y`` per token, stable at extreme logits, without ``log M``.

    ``log sum_j exp(log p_j) M[j, y]``: the weights ``p_j`` lie in [0, 1], so nothing overflows,
    and probabilities down to the dtype's smallest normal number (1e-38 in float32) keep their
    share. No max-shift is needed: ``lprobs`` are normalised, so ``max_j p_j >= 1/C`` and a shift
    would move the underflow threshold by at most a factor C (it cost about 15 % of the loss's
    time at C = 8000). Taking ``log M`` instead would put ``log 0 = -inf`` into the gradient with
    respect to M wherever an entry is zero (every off-diagonal of the identity). Rows whose sum
    underflows take ``log_column``'s fallback.

    The path depends on the parametrisation, not the values:

    * ``full``: ``full_col_dot.full_log_col_dot``, one autograd node with a closed-form backward
      (``full_col_dot.log_col_dot_reference`` is the plain formula it equals);
    * ``diag_lowrank``, ``bucketed``: ``lowrank_col_dot`` on ``phi.col_factors`` (no (N, C)
      tensor forward, one backward), then ``log_column``;
    * any other Phi: ``phi.col_dot`` by plain autograd, then ``log_column``.

    Args:
        phi: a Phi (its tensors non-negative; ``check_prob_tensors``).
        lprobs: (N, C) log-probabilities (normalised: ``logsumexp(lprobs, -1) = 0``).
        target: (N,) class ids in [0, C).
    Returns:
        (N,) tensor.
    """
    if isinstance(phi, FullPhi):
        return full_log_col_dot(lprobs, target, phi.matrix.to(lprobs.dtype))
    factors = phi.col_factors(target, lprobs.dtype)
    if factors is None:
        column = phi.col_dot(torch.exp(lprobs), target)
    else:
        column = lowrank_col_dot(lprobs, target, *factors)
    return log_column(column, lprobs, target, lambda: phi.prob_diagonal().to(lprobs.dtype))


def log_column(column: torch.Tensor, lprobs: torch.Tensor, target: torch.Tensor,
               diagonal: Callable[[], torch.Tensor]) -> torch.Tensor:
    """``log column`` per token, with the fallback for sums that underflow.

    When the sum underflows to 0 (the label's column catches less than ~1e-38 probability, e.g.
    logits of +-1e4 with M = I), the result falls back to
    ``log p_y + log M[y, y]``: exact when the column's off-diagonal part is also negligible (M = I:
    cross-entropy, gradient ``p - e_y``), otherwise an upper bound on the loss. M[y, y] below the
    smallest normal number is clamped to it, so the loss stays finite.

    Args:
        column: (N,) ``(p^T M)_y`` per token.
        lprobs: (N, C) the log-probabilities it came from.
        target: (N,) class ids y.
        diagonal: returns M's (C,) diagonal in ``lprobs``' dtype (called only for the fallback).
    Returns:
        (N,) tensor.
    """
    tiny = torch.finfo(lprobs.dtype).tiny
    if lprobs.device.type == "cpu" and (column.numel() == 0 or column.min().item() > tiny):
        # The usual case, without the fallback's ops (same values and gradients as the where
        # below). Only on CPU: on an accelerator the test would cost a synchronisation.
        return torch.log(column)
    ok = column > tiny
    # Both branches are computed on safe inputs (log 1 = 0), so the one torch.where drops passes
    # a zero gradient instead of a NaN.
    normal = torch.log(torch.where(ok, column, torch.ones_like(column)))
    own = diagonal()[target]
    own_log = torch.log(torch.where(ok, torch.ones_like(own), own.clamp_min(tiny)))
    fallback = lprobs.gather(-1, target.unsqueeze(-1)).squeeze(-1) + own_log
    return torch.where(ok, normal, fallback)


def check_prob_tensors(phi: Phi, tensors: Optional[Dict[str, torch.Tensor]] = None) -> None:
    """Raise PhiError unless the Phi tensors make ``M = phi.prob_matrix()`` usable by the prob form.

    Requirements (checked on the defining tensors, never on a C x C matrix):

    * every tensor finite and every entry >= 0. For ``diag_lowrank`` this asks ``d, U, V >= 0``,
      a sufficient condition for ``diag(d) + U V^T >= 0`` that costs O(C r) instead of O(C^2 r);
      for ``bucketed`` ``d, B >= 0``;
    * every column sum of M > 0: a zero column would make its label's loss ``-log 0``.

    Costs one host synchronisation when everything is fine (the details are computed only for
    the error message). A Phi's own tensors are checked again only after they changed (in-place
    updates bump ``Tensor._version``), so a fixed Phi costs nothing per update.

    Args:
        phi: the Phi whose parametrisation the tensors follow.
        tensors: ``{name: Tensor}`` to check instead of ``phi``'s own (always checked).
    """
    key = None
    if tensors is None:
        tensors = phi.tensors()
        key = tuple((id(t), t._version) for t in tensors.values())
        if getattr(phi, "_prob_checked_key", None) == key:
            return  # before any no_grad context: this is every update's path
    _check_prob_values(phi, tensors, key)


@torch.no_grad()
def _check_prob_values(phi: Phi, tensors: Dict[str, torch.Tensor], key: Optional[tuple]) -> None:
    """``check_prob_tensors`` on the values; remembers ``key`` on ``phi`` when they pass."""
    bad = [~torch.isfinite(t).all() | (t < 0).any() for t in tensors.values()]
    columns = phi.prob_column_sums(tensors)
    if not bool(torch.stack(bad + [~(columns > 0).all()]).any()):
        if key is not None:
            phi._prob_checked_key = key
        return
    for name, value in tensors.items():
        if not torch.isfinite(value).all():
            raise PhiError(f"Phi tensor '{name}' has {int((~torch.isfinite(value)).sum())} "
                           "non-finite values; expected all finite")
        if (value < 0).any():
            raise PhiError(
                f"Phi tensor '{name}' has {int((value < 0).sum())} negative entries (min "
                f"{value.min().item():.4g}); form=prob needs Phi >= 0 (for diag_lowrank: diag, U and "
                "V >= 0). Parametrise Phi non-negatively, e.g. losses.phi_from_logits for 'full'")
    zero = (columns <= 0).nonzero().flatten()
    raise PhiError(f"Phi ({phi.parametrisation}) has {zero.numel()} all-zero columns (first: class "
                   f"{int(zero[0])}); form=prob needs every column of Phi to have a positive entry, "
                   "or that label's loss is -log 0")


def phi_from_logits(logits: torch.Tensor, mix: torch.Tensor) -> torch.Tensor:
    """A row-stochastic ``full`` Phi from unconstrained logits: ``(1 - a_i) e_i + a_i softmax(L_i)``.

    Non-negative by construction, for learners (teacher, controller) that move Phi freely.

    * ``mix = 0`` gives M = I exactly (cross-entropy), and the gradient with respect to ``mix``
      there is ``softmax(L) - I``, not zero, so a learner starting at the identity can leave it
      (a pure ``softmax(L)`` reaches I only as ``L -> inf``, where its gradient vanishes).
    * ``mix = 1`` gives ``softmax(L)``: exactly any row-stochastic matrix with positive entries
      (``L = log T``), and a noise matrix T with zero entries as closely as wanted (those entries
      of L at a large negative value).

    Rows sum to 1 like a noise matrix's. Row sums are not a restriction worth lifting: scaling a
    column of M changes no gradient (module docstring), and T is row-stochastic.

    Args:
        logits: (C, C) unconstrained L.
        mix: () or (C,) weights a in [0, 1] (e.g. ``torch.sigmoid`` of a learned scalar, or a
            clamped one when a = 0 must be reachable exactly).
    Returns:
        (C, C) tensor M >= 0 with rows summing to 1, differentiable in ``logits`` and ``mix``.
    """
    if logits.dim() != 2 or logits.size(0) != logits.size(1):
        raise PhiError(f"phi_from_logits: logits have shape {tuple(logits.shape)}; expected (C, C)")
    mix = torch.as_tensor(mix, dtype=logits.dtype, device=logits.device)
    if mix.dim() > 1 or (mix.dim() == 1 and mix.numel() != logits.size(0)):
        raise PhiError(f"phi_from_logits: mix has shape {tuple(mix.shape)}; expected () or "
                       f"({logits.size(0)},)")
    if not bool(((mix >= 0) & (mix <= 1)).all()):
        raise PhiError(f"phi_from_logits: mix must lie in [0, 1]; got min {mix.min().item():.4g}, "
                       f"max {mix.max().item():.4g}")
    a = mix.reshape(-1, 1) if mix.dim() == 1 else mix
    eye = torch.eye(logits.size(0), dtype=logits.dtype, device=logits.device)
    return (1 - a) * eye + a * torch.softmax(logits, dim=-1)
