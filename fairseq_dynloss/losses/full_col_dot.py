"""The prob form's ``log (p^T M)_y`` for a dense (``full``) M, with a closed-form backward.

    out[n] = log c[n],   c[n] = sum_j p[n, j] M[j, y_n],   p = exp(lprobs)

``log_col_dot_reference`` is the plain formula (a gather of M's columns, a product and a sum, then
``prob_form.log_column``'s ``log`` with its underflow fallback), differentiated by autograd;
``full_log_col_dot`` computes the same values in one autograd node with a hand-written backward:

    d out[n] / d lprobs[n, j] = p[n, j] M[j, y_n] / c[n] = q[n, j]   (q: a distribution over j)
    d out[n] / d M[j, y_n]    = p[n, j] / c[n]

so with ``lprobs = log_softmax(z)`` the logit gradient is ``p - q``: cross-entropy's ``p - e_y``
with the one-hot replaced by the posterior of the clean class given the label. No ``log M`` is
taken, so zeros in M (the identity's off-diagonal) are exact and their gradient finite.

**Which path.** The node saves the (N, C) passes of plain autograd's backward (the product's and
the sum's gradients, the ``exp``), which dominate once N x C is large (N = 4096, C = 1000: 31
instead of 57 ms for log_softmax plus the loss, forward and backward, on one CPU thread). Below
about 1e4 values on CPU the Python ``autograd.Function`` costs more (~15-20 us per call) than the
nodes it saves, so there ``full_log_col_dot`` runs the reference (``_CPU_FUSED_MIN_VALUES``; the
generic trainer's MNIST-1D batch is N = 100, C = 10). BENCHMARKS.md, issue 15.

**Underflow.** When ``c[n] <= tiny`` (the dtype's smallest normal number: the label's column
catches no probability, e.g. logits of +-1e4 with M = I) the row takes the reference's fallback
``lprobs[n, y_n] + log max(M[y_n, y_n], tiny)``, with the reference's gradients: ``e_y`` for
``lprobs`` and ``1 / M[y, y]`` for the diagonal entry (0 where ``M[y, y] < tiny``).

Double backward (L2T-DLF hypergradients, ``create_graph=True``) differentiates the reference
formula instead, so the fast path never has to be twice differentiable.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch

# Below this many (N x C) values on CPU plain autograd of the reference is faster (log_softmax
# plus the loss, forward and backward, one thread: N = 100, C = 10: 152 us fused vs 132 us plain;
# even at about 1e4 values; N = 1000, C = 100: 507 vs 718 us).
_CPU_FUSED_MIN_VALUES = 10_000


def dense_col_dot(probs: torch.Tensor, target: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """``c[n] = sum_j probs[n, j] M[j, y_n]`` by plain autograd (``FullPhi.col_dot``).

    Args:
        probs: (N, C) non-negative weights (probabilities).
        target: (N,) class ids y in [0, C).
        matrix: (C, C) M, in ``probs``' dtype.
    Returns:
        (N,) tensor.
    """
    return (matrix.index_select(1, target).t() * probs).sum(-1)


def log_col_dot_reference(lprobs: torch.Tensor, target: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """``log (p^T M)_y`` per row by plain autograd, with the prob form's underflow fallback
    (``prob_form.log_column``): the path every Phi without a fused one takes.

    Args:
        lprobs: (N, C) log-probabilities.
        target: (N,) class ids y in [0, C).
        matrix: (C, C) M >= 0, in ``lprobs``' dtype.
    Returns:
        (N,) tensor.
    """
    from .prob_form import log_column  # prob_form imports this module

    return log_column(dense_col_dot(torch.exp(lprobs), target, matrix), lprobs, target,
                      lambda: matrix.diagonal())


def full_log_col_dot(lprobs: torch.Tensor, target: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """``log_col_dot_reference(lprobs, target, matrix)`` in one autograd node (module docstring).

    Same values as the reference (up to float round-off); gradients for ``lprobs`` and
    ``matrix`` when they require them; twice differentiable through the reference.

    Args:
        lprobs: (N, C) log-probabilities.
        target: (N,) class ids y in [0, C).
        matrix: (C, C) M >= 0, in ``lprobs``' dtype and on its device.
    Returns:
        (N,) tensor.
    """
    if lprobs.dim() != 2 or tuple(matrix.shape) != (lprobs.size(1), lprobs.size(1)):
        raise ValueError(f"full_log_col_dot: lprobs {tuple(lprobs.shape)} and matrix "
                         f"{tuple(matrix.shape)}; expected (N, C) and (C, C)")
    if tuple(target.shape) != (lprobs.size(0),):
        raise ValueError(f"full_log_col_dot: target {tuple(target.shape)}; expected ({lprobs.size(0)},)")
    if matrix.dtype != lprobs.dtype:
        raise ValueError(f"full_log_col_dot: matrix dtype {matrix.dtype} and lprobs dtype {lprobs.dtype}; "
                         "expected the same")
    if lprobs.device.type == "cpu" and lprobs.numel() < _CPU_FUSED_MIN_VALUES:
        return log_col_dot_reference(lprobs, target, matrix)
    return _FullLogColDot.apply(lprobs, target, matrix)


class _FullLogColDot(torch.autograd.Function):
    """``full_log_col_dot``; gradients in the module docstring."""

    @staticmethod
    def forward(ctx, lprobs, target, matrix):
        weighted = torch.exp(lprobs).mul_(matrix.index_select(1, target).t())  # (N, C): p_nj M[j, y_n]
        column = weighted.sum(-1)
        tiny = torch.finfo(lprobs.dtype).tiny
        ok = column > tiny
        # The fallback only when a row needs it; on an accelerator the test would cost a
        # synchronisation, so there the where always runs (same values).
        everywhere = lprobs.device.type == "cpu" and bool(ok.all())
        if everywhere:
            out = torch.log(column)
            ok = None
        else:
            own = matrix.diagonal()[target]
            fallback = lprobs.gather(-1, target.unsqueeze(-1)).squeeze(-1) + torch.log(own.clamp_min(tiny))
            out = torch.where(ok, torch.log(torch.where(ok, column, torch.ones_like(column))), fallback)
        ctx.save_for_backward(lprobs, target, matrix, weighted, column, ok)
        return out

    @staticmethod
    def backward(ctx, grad):
        lprobs, target, matrix, weighted, column, ok = ctx.saved_tensors
        needs = ctx.needs_input_grad
        if torch.is_grad_enabled():  # create_graph=True: differentiate the plain formula
            return _reference_backward(grad, needs, lprobs, target, matrix)
        if ok is None:
            scale = grad / column  # (N,)
        else:
            scale = torch.where(ok, grad / torch.where(ok, column, torch.ones_like(column)),
                                torch.zeros_like(grad))
        grad_lprobs = grad_matrix = None
        if needs[0]:
            grad_lprobs = weighted * scale.unsqueeze(-1)
            if ok is not None:  # fallback rows: d lprobs[n, y_n] = grad[n]
                rest = torch.where(ok, torch.zeros_like(grad), grad)
                grad_lprobs.scatter_add_(-1, target.unsqueeze(-1), rest.unsqueeze(-1))
        if needs[2]:
            # d out[n] / d M[j, y_n] = p_nj / c_n: column y_n of the gradient gains scale_n p_n
            probs_scaled = torch.exp(lprobs) * scale.unsqueeze(-1)
            grad_matrix = torch.zeros_like(matrix).index_add_(1, target, probs_scaled.t())
            if ok is not None:  # fallback rows: d log max(M[y, y], tiny) / d M[y, y]
                tiny = torch.finfo(lprobs.dtype).tiny
                own = matrix.diagonal()[target]
                own_grad = torch.where(ok | (own < tiny), torch.zeros_like(grad),
                                       grad / own.clamp_min(tiny))
                grad_matrix.diagonal().index_add_(0, target, own_grad)
        return grad_lprobs, None, grad_matrix


def _reference_backward(grad, needs, lprobs, target, matrix) -> Tuple[Optional[torch.Tensor], ...]:
    """The gradients of ``log_col_dot_reference``, themselves differentiable."""
    inputs = (lprobs, None, matrix)
    wanted = [t for t, need in zip(inputs, needs) if need]
    out = log_col_dot_reference(lprobs, target, matrix)
    found = iter(torch.autograd.grad(out, wanted, grad, create_graph=True, allow_unused=True))
    return tuple(next(found) if need else None for need in needs)
