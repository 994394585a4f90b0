"""Large-margin softmax (L-Softmax; Liu et al., ICML 2016), as a pure function.

For features x and class weights W, the target logit ``W_y . x = |W_y| |x| cos(theta)`` becomes
``|W_y| |x| psi(theta)`` with the monotone piecewise extension of ``cos(m theta)``

    psi(theta) = (-1)^k cos(m theta) - 2k,   theta in [k pi / m, (k + 1) pi / m],  k = 0..m-1,

and ``cos(m theta) = T_m(cos theta)`` (Chebyshev polynomial, so no ``acos`` in the gradient).
The paper anneals towards it from the plain logit: ``f_y = (beta W_y.x + |W_y||x| psi) / (1 + beta)``.
"""

from __future__ import annotations

import math

import torch


def chebyshev_cos_multiple(cos: torch.Tensor, margin: int) -> torch.Tensor:
    """``cos(m theta)`` from ``cos(theta)`` by the recurrence ``T_{k+1} = 2 c T_k - T_{k-1}``."""
    previous, current = torch.ones_like(cos), cos
    if margin == 0:
        return previous
    for _ in range(margin - 1):
        previous, current = current, 2 * cos * current - previous
    return current


def lsoftmax_logits(features: torch.Tensor, weight: torch.Tensor, target: torch.Tensor,
                    margin: int, beta: float = 0.0, eps: float = 1e-12) -> torch.Tensor:
    """Logits of L-Softmax (training form; use ``features @ weight.T`` at test time).

    Args:
        features: (N, D) penultimate features x.
        weight: (C, D) class weights W (no bias, as in the paper).
        target: (N,) class ids.
        margin: integer m >= 1 (m = 1 gives the plain logits).
        beta: annealing weight of the plain target logit (>= 0).

    Returns:
        (N, C) logits: plain ``W_j . x`` for j != y, the large-margin value for j = y.
    """
    if not isinstance(margin, int) or margin < 1:
        raise ValueError(f"L-Softmax margin={margin!r}; expected an integer >= 1")
    if beta < 0:
        raise ValueError(f"L-Softmax beta={beta}; expected >= 0")
    logits = features @ weight.t()
    target_logit = logits.gather(1, target[:, None]).squeeze(1)
    norms = weight[target].norm(dim=1) * features.norm(dim=1)
    cos = (target_logit / (norms + eps)).clamp(-1.0, 1.0)
    with torch.no_grad():
        k = torch.floor(torch.acos(cos) * margin / math.pi).clamp(0, margin - 1)
    sign = 1.0 - 2.0 * torch.remainder(k, 2)
    psi = sign * chebyshev_cos_multiple(cos, margin) - 2.0 * k
    margin_logit = (beta * target_logit + norms * psi) / (1.0 + beta)
    return logits.scatter(1, target[:, None], margin_logit[:, None])
