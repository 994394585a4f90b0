"""ALA's metric-learning loss families with loss parameters Phi (docs/design.md §3.4; slides, "Instantiation
on Metric Learning"). Pure torch; distances come in, scalars go out.

Distance mixture
    A Phi-weighted mixture of distance transforms replaces the distance inside the loss:

        F_Phi(d) = sum_k Phi_k f_k(d)            f_k from ``TRANSFORMS`` (non-decreasing)

    * triplet (Schroff et al. 2015), per triplet (anchor a, positive p, negative n):
      ``l = max(0, F(d+) - F(d-) + eta)`` with ``d+ = d_ap``, ``d- = d_an`` (the slides' l_tri);
      reduced as pytorch-metric-learning's ``AvgNonZeroReducer``: the mean over the triplets with
      ``l > 0`` (0 when there is none).
    * margin (Wu et al. 2017), per triplet:
      ``l = max(0, F(d+) - b + alpha) + max(0, b - F(d-) + alpha)`` (boundary b, margin alpha);
      reduced as pytorch-metric-learning's ``MarginLoss``: the sum over triplets divided by the
      number of non-zero positive terms plus non-zero negative terms (0 when there is none).

    With ``Phi = e_linear`` (weight 1 on ``f(d) = d``) both equal the library losses exactly.
    Non-negative weights keep F non-decreasing in d; all-zero weights make the loss constant.

Focal weighting, per anchor i with positives P(i) and negatives N(i) in the batch:

        l_i = 1/Phi1 log[1 + sum_{p in P(i)} exp( Phi1 (d_ip - alpha))]
            + 1/Phi2 log[1 + sum_{n in N(i)} exp(-Phi2 (d_in - alpha))]

    averaged over the anchors (an empty sum contributes log 1 = 0). Phi1, Phi2 > 0 act as inverse
    temperatures: large values focus the loss on the hardest positives / negatives.
"""

from __future__ import annotations

from typing import Callable, Dict, Sequence

import torch

TRANSFORMS: Dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "linear": lambda d: d,
    "square": lambda d: d * d,
    "log1p": torch.log1p,
    "expm1": torch.expm1,
}
DEFAULT_TRANSFORMS = ("linear", "square", "log1p", "expm1")


class MetricLossError(ValueError):
    """Bad input to a metric-learning ALA loss: Phi shape or sign, unknown transform, shapes."""


def check_transforms(names: Sequence[str]) -> tuple:
    """The transform names as a tuple; unknown or repeated names raise MetricLossError."""
    names = tuple(names)
    unknown = [n for n in names if n not in TRANSFORMS]
    if unknown or not names or len(set(names)) != len(names):
        raise MetricLossError(
            f"distance transforms {list(names)}; expected distinct names from {list(TRANSFORMS)}"
        )
    return names


def _check_phi(phi: torch.Tensor, size: int, what: str) -> None:
    # Shapes only: checking values here would synchronise a GPU on every training step. The
    # objectives check Phi's values when built (``check_phi_values``) and ALA clamps its updates.
    if not isinstance(phi, torch.Tensor) or tuple(phi.shape) != (size,):
        shape = tuple(phi.shape) if isinstance(phi, torch.Tensor) else type(phi).__name__
        raise MetricLossError(f"{what} has shape {shape}; expected ({size},)")


def check_phi_values(phi: torch.Tensor, low: float, high: float, what: str) -> None:
    """Phi finite and inside ``[low, high]``, else MetricLossError naming the values."""
    if not torch.isfinite(phi).all() or bool((phi < low).any()) or bool((phi > high).any()):
        raise MetricLossError(f"{what}={phi.tolist()}; expected finite values in [{low}, {high}]")


def mixture_distance(d: torch.Tensor, phi: torch.Tensor,
                     transforms: Sequence[str] = DEFAULT_TRANSFORMS) -> torch.Tensor:
    """``F_Phi(d) = sum_k phi_k f_k(d)``, elementwise.

    Args:
        d: distances, any shape (...).
        phi: (K,) mixture weights, one per transform.
        transforms: K names from ``TRANSFORMS``.
    Returns:
        (...) like ``d``.
    """
    names = check_transforms(transforms)
    _check_phi(phi, len(names), "mixture weights phi")
    phi = phi.to(d)
    out = phi[0] * TRANSFORMS[names[0]](d)
    for k in range(1, len(names)):
        out = out + phi[k] * TRANSFORMS[names[k]](d)
    return out


def _check_pairs(d_ap: torch.Tensor, d_an: torch.Tensor) -> None:
    if d_ap.dim() != 1 or d_ap.shape != d_an.shape:
        raise MetricLossError(
            f"d_ap {tuple(d_ap.shape)} / d_an {tuple(d_an.shape)}; expected (T,) each, one per triplet"
        )


def _nonzero_mean(losses: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    # sum / max(count, 1): 0 when nothing is active, and no host sync (unlike boolean indexing)
    return losses.sum() / count.clamp(min=1).to(losses.dtype)


def triplet_mixture_loss(d_ap: torch.Tensor, d_an: torch.Tensor, phi: torch.Tensor, margin: float,
                         transforms: Sequence[str] = DEFAULT_TRANSFORMS) -> torch.Tensor:
    """Mean over active triplets of ``max(0, F(d_ap) - F(d_an) + margin)`` (module docstring).

    Args:
        d_ap, d_an: (T,) anchor-positive and anchor-negative distances of T triplets.
        phi: (K,) mixture weights.
        margin: eta.
    """
    _check_pairs(d_ap, d_an)
    losses = torch.relu(mixture_distance(d_ap, phi, transforms) - mixture_distance(d_an, phi, transforms) + margin)
    return _nonzero_mean(losses, (losses > 0).sum())


def triplet_mixture_loss_all(dist: torch.Tensor, labels: torch.Tensor, phi: torch.Tensor, margin: float,
                             transforms: Sequence[str] = DEFAULT_TRANSFORMS) -> torch.Tensor:
    """``triplet_mixture_loss`` over every valid triplet of a batch in O(N^2 log N), without
    listing the ~N^3 triplets (a 1000-example evaluation chunk would need 10^8 index triples).

    For anchor a, with ``x_p = F(d_ap) + margin`` and the anchor's negative values ``y_n = F(d_an)``
    sorted, ``sum_n relu(x_p - y_n) = c_p x_p - (sum of the c_p smallest y)`` where
    ``c_p = #{n : y_n < x_p}`` is also the number of active triplets of (a, p).

    Args:
        dist: (N, N) pairwise distances.
        labels: (N,) class ids; a triplet is (a, p, n) with ``y_p = y_a``, ``p != a``, ``y_n != y_a``.
    """
    n = _check_square(dist, labels)
    F = mixture_distance(dist, phi, transforms)
    same = labels[:, None] == labels[None, :]
    positive = same & ~torch.eye(n, dtype=torch.bool, device=dist.device)
    negative = ~same
    # non-negatives sort last as +inf and are never below a finite x
    y = torch.where(negative, F, torch.full_like(F, float("inf"))).sort(dim=1).values
    prefix = torch.cat([F.new_zeros(n, 1), torch.where(torch.isfinite(y), y, torch.zeros_like(y)).cumsum(1)], 1)
    x = (F + margin).contiguous()
    below = torch.searchsorted(y.contiguous(), x)  # (N, N): c for every (a, p)
    terms = below.to(F.dtype) * x - prefix.gather(1, below)
    total = (terms * positive).sum()
    count = (below * positive).sum()
    return total / count.clamp(min=1).to(total.dtype)


def margin_mixture_loss(d_ap: torch.Tensor, d_an: torch.Tensor, phi: torch.Tensor, margin: float,
                        boundary: float, transforms: Sequence[str] = DEFAULT_TRANSFORMS) -> torch.Tensor:
    """Margin loss on ``F(d)``: ``sum_t [max(0, F(d+) - b + alpha) + max(0, b - F(d-) + alpha)]``
    divided by the number of non-zero terms (module docstring).

    Args:
        d_ap, d_an: (T,) distances of T triplets.
        phi: (K,) mixture weights.
        margin: alpha.
        boundary: b (``beta`` of Wu et al.).
    """
    _check_pairs(d_ap, d_an)
    pos = torch.relu(mixture_distance(d_ap, phi, transforms) - boundary + margin)
    neg = torch.relu(boundary - mixture_distance(d_an, phi, transforms) + margin)
    return _nonzero_mean(pos + neg, (pos > 0).sum() + (neg > 0).sum())


def margin_mixture_loss_all(dist: torch.Tensor, labels: torch.Tensor, phi: torch.Tensor, margin: float,
                            boundary: float, transforms: Sequence[str] = DEFAULT_TRANSFORMS) -> torch.Tensor:
    """``margin_mixture_loss`` over every valid triplet of a batch in O(N^2): the positive term of
    (a, p) appears once per negative of a, the negative term of (a, n) once per positive of a."""
    n = _check_square(dist, labels)
    F = mixture_distance(dist, phi, transforms)
    same = labels[:, None] == labels[None, :]
    positive = same & ~torch.eye(n, dtype=torch.bool, device=dist.device)
    negative = ~same
    n_pos = positive.sum(1, keepdim=True).to(F.dtype)  # (N, 1) triplets per (a, n) pair
    n_neg = negative.sum(1, keepdim=True).to(F.dtype)
    pos = torch.relu(F - boundary + margin) * positive
    neg = torch.relu(boundary - F + margin) * negative
    total = (pos * n_neg).sum() + (neg * n_pos).sum()
    count = ((pos > 0) * n_neg).sum() + ((neg > 0) * n_pos).sum()
    return total / count.clamp(min=1)


def focal_weighting_loss(dist: torch.Tensor, labels: torch.Tensor, phi: torch.Tensor,
                         alpha: float) -> torch.Tensor:
    """Focal weighting (module docstring), mean over the N anchors.

    Args:
        dist: (N, N) pairwise distances.
        labels: (N,) class ids; positives of i: same class, not i; negatives: other classes.
        phi: (2,) ``(Phi1, Phi2)``, both > 0 (``check_phi_values``; not re-checked per call).
        alpha: the distance threshold.
    """
    n = _check_square(dist, labels)
    _check_phi(phi, 2, "focal scales phi")
    phi = phi.to(dist)
    same = labels[:, None] == labels[None, :]
    positive = same & ~torch.eye(n, dtype=torch.bool, device=dist.device)
    negative = ~same
    # log(1 + sum_j exp(x_j)) = logsumexp over [0, x_j...]: stable for large Phi * d
    zero = dist.new_zeros(n, 1)
    pos_logits = torch.where(positive, phi[0] * (dist - alpha), torch.full_like(dist, float("-inf")))
    neg_logits = torch.where(negative, -phi[1] * (dist - alpha), torch.full_like(dist, float("-inf")))
    pos = torch.logsumexp(torch.cat([zero, pos_logits], 1), 1) / phi[0]
    neg = torch.logsumexp(torch.cat([zero, neg_logits], 1), 1) / phi[1]
    return (pos + neg).mean()


def _check_square(dist: torch.Tensor, labels: torch.Tensor) -> int:
    if dist.dim() != 2 or dist.shape[0] != dist.shape[1] or tuple(labels.shape) != (dist.shape[0],):
        raise MetricLossError(
            f"dist {tuple(dist.shape)} / labels {tuple(labels.shape)}; expected (N, N) and (N,)"
        )
    return dist.shape[0]
