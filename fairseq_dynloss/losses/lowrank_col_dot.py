"""The prob form's column product for a diagonal-plus-low-rank M, from log-probabilities.

``diag_lowrank`` and ``bucketed`` Phi share one structure in the prob form (``losses/phi.py``):

    c[n] = (p_n^T M)_{y_n} = d_y p_{n,y} + (p_n @ L) . R_y,      M = diag(d) + L R^T

(``diag_lowrank``: L = U, R = V; ``bucketed``: L = the (C, G) per-bucket mean map, R = B^T read
through the bucket map). ``lowrank_col_dot_reference`` is the plain formula on probabilities;
``lowrank_col_dot`` computes the same values from ``lprobs`` with a hand-written backward.

Why a hand-written backward: on CPU, a fresh (N, C) tensor costs a pass of page faults before any
arithmetic (2048 x 8000 float32: 64 MB, ~50 ms, about as much as ``x.exp()``). Plain autograd of
``(exp(lprobs) @ L)`` plus the gather of ``p_y`` makes four: ``exp`` forward, and backward the
zero-filled gather gradient, the sum of the two gradients, and the product with ``exp``. Here the
forward works on row blocks that stay in cache and keeps no (N, C) tensor; the backward writes the
one (N, C) gradient it returns, block by block (``(g R) L^T``, times ``exp(lprobs)`` recomputed per
block), and adds the diagonal term as a scatter of N values: issue 14, BENCHMARKS.md.

Double backward (L2T-DLF hypergradients, ``create_graph=True``) differentiates the reference
formula instead, so the fast path never has to be twice differentiable.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch

# Rows per block on CPU: about 2^17 values (512 KB in float32), which stays in a core's L2 cache.
# Blocks of 16-256 rows of 8000 classes timed alike; on an accelerator one block holds every row.
_CPU_BLOCK_VALUES = 2 ** 17


def lowrank_col_dot_reference(probs: torch.Tensor, target: torch.Tensor, diag_y: torch.Tensor,
                              left: torch.Tensor, right_y: torch.Tensor) -> torch.Tensor:
    """``c[n] = diag_y[n] probs[n, y_n] + (probs[n] @ left) . right_y[n]``, plain autograd.

    Args:
        probs: (N, C) non-negative weights (probabilities).
        target: (N,) class ids y in [0, C).
        diag_y: (N,) ``d[y_n]``.
        left: (C, k) L.
        right_y: (N, k) ``R[y_n]``.
    Returns:
        (N,) tensor.
    """
    own = diag_y * probs.gather(-1, target.unsqueeze(-1)).squeeze(-1)
    return own + (right_y * (probs @ left)).sum(-1)


def lowrank_col_dot(lprobs: torch.Tensor, target: torch.Tensor, diag_y: torch.Tensor,
                    left: torch.Tensor, right_y: torch.Tensor) -> torch.Tensor:
    """``lowrank_col_dot_reference(exp(lprobs), ...)`` without an (N, C) tensor in the forward.

    Same values as the reference up to the order of the sums; gradients for every input that
    requires them (lprobs, diag_y, left, right_y), twice differentiable.

    Args:
        lprobs: (N, C) log-probabilities.
        target: (N,) class ids y in [0, C).
        diag_y: (N,) ``d[y_n]``.
        left: (C, k) L.
        right_y: (N, k) ``R[y_n]``.
    Returns:
        (N,) tensor.
    """
    if lprobs.dim() != 2 or left.dim() != 2 or left.size(0) != lprobs.size(1):
        raise ValueError(f"lowrank_col_dot: lprobs {tuple(lprobs.shape)} and left "
                         f"{tuple(left.shape)}; expected (N, C) and (C, k)")
    n, k = lprobs.size(0), left.size(1)
    if tuple(target.shape) != (n,) or tuple(diag_y.shape) != (n,) or tuple(right_y.shape) != (n, k):
        raise ValueError(f"lowrank_col_dot: target {tuple(target.shape)}, diag_y "
                         f"{tuple(diag_y.shape)}, right_y {tuple(right_y.shape)}; expected "
                         f"({n},), ({n},), ({n}, {k})")
    return _LowRankColDot.apply(lprobs, target, diag_y, left, right_y)


def _blocks(lprobs: torch.Tensor):
    """(start, end) row ranges that cover ``lprobs``."""
    rows = lprobs.size(0)
    if lprobs.device.type == "cpu":
        step = max(1, _CPU_BLOCK_VALUES // max(1, lprobs.size(1)))
    else:
        step = max(1, rows)
    return [(start, min(start + step, rows)) for start in range(0, rows, step)]


class _LowRankColDot(torch.autograd.Function):
    """``lowrank_col_dot``; see the module docstring for the passes it saves."""

    @staticmethod
    def forward(ctx, lprobs, target, diag_y, left, right_y):
        blocks = _blocks(lprobs)
        probs_left = lprobs.new_empty(lprobs.size(0), left.size(1))
        buffer = lprobs.new_empty(blocks[0][1] if blocks else 0, lprobs.size(1))
        for start, end in blocks:
            probs = torch.exp(lprobs[start:end], out=buffer[: end - start])
            torch.mm(probs, left, out=probs_left[start:end])
        own = lprobs.gather(-1, target.unsqueeze(-1)).squeeze(-1).exp()  # p_y
        ctx.save_for_backward(lprobs, target, diag_y, left, right_y, own, probs_left)
        return diag_y * own + (right_y * probs_left).sum(-1)

    @staticmethod
    def backward(ctx, grad):
        lprobs, target, diag_y, left, right_y, own, probs_left = ctx.saved_tensors
        needs = ctx.needs_input_grad
        if torch.is_grad_enabled():  # create_graph=True: differentiate the plain formula
            return _reference_backward(grad, needs, lprobs, target, diag_y, left, right_y)
        weighted = grad.unsqueeze(-1) * right_y  # (N, k): g_n R[y_n]
        grad_lprobs = grad_left = None
        if needs[0] or needs[3]:
            grad_lprobs = torch.empty(lprobs.shape, dtype=lprobs.dtype, device=lprobs.device) \
                if needs[0] else None
            grad_left = torch.zeros_like(left) if needs[3] else None
            blocks = _blocks(lprobs)
            buffer = lprobs.new_empty(blocks[0][1] if blocks else 0, lprobs.size(1))
            for start, end in blocks:
                probs = torch.exp(lprobs[start:end], out=buffer[: end - start])
                if grad_left is not None:  # dc/dL = sum_n p_n (g_n R[y_n])^T
                    grad_left.addmm_(probs.t(), weighted[start:end])
                if grad_lprobs is not None:  # dc_n/dlprobs_nj = p_nj (L R[y_n])_j (+ the diagonal)
                    block = torch.mm(weighted[start:end], left.t(), out=grad_lprobs[start:end])
                    block.mul_(probs)
            if grad_lprobs is not None:
                grad_lprobs.scatter_add_(-1, target.unsqueeze(-1), (grad * diag_y * own).unsqueeze(-1))
        grad_diag = grad * own if needs[2] else None
        grad_right = grad.unsqueeze(-1) * probs_left if needs[4] else None
        return grad_lprobs, None, grad_diag, grad_left, grad_right


def _reference_backward(grad, needs, lprobs, target, diag_y, left,
                        right_y) -> Tuple[Optional[torch.Tensor], ...]:
    """The gradients of ``lowrank_col_dot_reference``, themselves differentiable."""
    inputs = (lprobs, None, diag_y, left, right_y)
    wanted = [t for t, need in zip(inputs, needs) if need]
    column = lowrank_col_dot_reference(torch.exp(lprobs), target, diag_y, left, right_y)
    found = iter(torch.autograd.grad(column, wanted, grad, create_graph=True, allow_unused=True))
    return tuple(next(found) if need else None for need in needs)
