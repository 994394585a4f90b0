"""losses/full_col_dot.py: the fused full-Phi prob-form term against the plain formula (values and
gradients, zeros in M, underflowing rows), finite differences, the logit gradient p - q, double
backward, and the dispatch of log_col_dot / full_log_col_dot."""

import math

import pytest
import torch

from fairseq_dynloss.losses import FullPhi, log_col_dot
from fairseq_dynloss.losses.full_col_dot import (
    _CPU_FUSED_MIN_VALUES, _FullLogColDot, full_log_col_dot, log_col_dot_reference,
)


def fused(lprobs, target, matrix):
    """The autograd.Function itself, whatever the size (full_log_col_dot may run the reference)."""
    return _FullLogColDot.apply(lprobs, target, matrix)


def inputs(n=40, c=6, scale=1.0, zeros=False, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, generator=g, dtype=dtype) * scale
    matrix = torch.rand(c, c, generator=g, dtype=dtype)
    if zeros:  # about half the entries exactly 0, every column still positive somewhere
        matrix = matrix * (torch.rand(c, c, generator=g, dtype=dtype) > 0.5)
        matrix[torch.arange(c), torch.arange(c)] = torch.rand(c, generator=g, dtype=dtype) + 0.1
    target = torch.randint(0, c, (n,), generator=g)
    return torch.log_softmax(logits, -1), target, matrix


def value_and_grads(fn, lprobs, target, matrix, weights):
    lprobs = lprobs.detach().clone().requires_grad_(True)
    matrix = matrix.detach().clone().requires_grad_(True)
    out = fn(lprobs, target, matrix)
    grads = torch.autograd.grad((out * weights).sum(), (lprobs, matrix))
    return out.detach(), grads


def assert_same(lprobs, target, matrix, atol=1e-12, rtol=1e-10):
    weights = torch.randn(lprobs.size(0), generator=torch.Generator().manual_seed(1), dtype=lprobs.dtype)
    out, (g_lprobs, g_matrix) = value_and_grads(fused, lprobs, target, matrix, weights)
    ref, (r_lprobs, r_matrix) = value_and_grads(log_col_dot_reference, lprobs, target, matrix, weights)
    torch.testing.assert_close(out, ref, atol=atol, rtol=rtol)
    torch.testing.assert_close(g_lprobs, r_lprobs, atol=atol, rtol=rtol)
    torch.testing.assert_close(g_matrix, r_matrix, atol=atol, rtol=rtol)
    assert torch.isfinite(out).all() and torch.isfinite(g_lprobs).all() and torch.isfinite(g_matrix).all()


def test_hand_values():
    # p = (0.5, 0.3, 0.2); column 0 of M = (0.6, 0.4, 0): log(0.5 * 0.6 + 0.3 * 0.4) = log 0.42
    lprobs = torch.log(torch.tensor([[0.5, 0.3, 0.2], [0.5, 0.3, 0.2]], dtype=torch.float64))
    matrix = torch.tensor([[0.6, 0.4, 0.0], [0.4, 0.6, 0.0], [0.0, 0.5, 0.5]], dtype=torch.float64)
    out = fused(lprobs, torch.tensor([0, 2]), matrix)
    torch.testing.assert_close(out, torch.tensor([math.log(0.42), math.log(0.1)], dtype=torch.float64))


@pytest.mark.parametrize("scale", [1.0, 10.0, 50.0])
@pytest.mark.parametrize("zeros", [False, True])
def test_equals_reference_float64(scale, zeros):
    assert_same(*inputs(scale=scale, zeros=zeros))


@pytest.mark.parametrize("zeros", [False, True])
def test_equals_reference_float32(zeros):
    # float32 with large logits: the brief's 1e-6 (relative to the values' size)
    assert_same(*inputs(n=100, c=10, scale=20.0, zeros=zeros, dtype=torch.float32), atol=1e-6, rtol=1e-6)


def test_underflowing_rows_take_the_fallback():
    # logits of +-1e4 with M = I except a zero diagonal entry and one off-diagonal: many rows'
    # columns catch no probability (c < tiny), some of them with M[y, y] = 0 (clamped to tiny)
    lprobs, target, _ = inputs(n=60, c=6, scale=1e4)
    matrix = torch.eye(6, dtype=torch.float64)
    matrix[1, 1] = 0.0
    matrix[2, 1] = 0.5
    matrix[3, 4] = 0.25
    column = (matrix[:, target].t() * lprobs.exp()).sum(-1)
    tiny = torch.finfo(torch.float64).tiny
    under = column <= tiny
    assert under.any() and (~under).any() and (under & (target == 1)).any()
    assert_same(lprobs, target, matrix)
    out = fused(lprobs, target, matrix)
    own = lprobs.gather(-1, target.unsqueeze(-1)).squeeze(-1)
    expected = own + torch.log(matrix.diagonal()[target].clamp_min(tiny))
    torch.testing.assert_close(out[under], expected[under])


def test_finite_differences():
    lprobs, target, matrix = inputs(n=7, c=4, zeros=True)
    lprobs.requires_grad_(True)
    matrix = (matrix + 0.05).requires_grad_(True)  # central differences need M > 0
    assert torch.autograd.gradcheck(fused, (lprobs, target, matrix))
    assert torch.autograd.gradgradcheck(fused, (lprobs, target, matrix))


def test_logit_gradient_is_p_minus_q():
    # l = -log (p^T M)_y with p = softmax(z): dl/dz = p - q, q_j = p_j M[j, y] / sum_k p_k M[k, y]
    g = torch.Generator().manual_seed(3)
    z = torch.randn(9, 5, generator=g, dtype=torch.float64, requires_grad=True)
    matrix = torch.rand(5, 5, generator=g, dtype=torch.float64)
    target = torch.randint(0, 5, (9,), generator=g)
    (grad,) = torch.autograd.grad(-fused(torch.log_softmax(z, -1), target, matrix).sum(), z)
    p = torch.softmax(z.detach(), -1)
    q = p * matrix[:, target].t()
    q = q / q.sum(-1, keepdim=True)
    torch.testing.assert_close(grad, p - q)


def test_double_backward_equals_reference():
    lprobs, target, matrix = inputs(n=8, c=5)
    matrix.requires_grad_(True)
    lprobs.requires_grad_(True)
    second = []
    for fn in (fused, log_col_dot_reference):
        (g_lprobs,) = torch.autograd.grad(fn(lprobs, target, matrix).sum(), lprobs, create_graph=True)
        second.append(torch.autograd.grad((g_lprobs ** 2).sum(), (lprobs, matrix)))
    for a, b in zip(*second):
        torch.testing.assert_close(a, b)


def test_matrix_without_gradient():
    lprobs, target, matrix = inputs()
    lprobs.requires_grad_(True)
    (grad,) = torch.autograd.grad(fused(lprobs, target, matrix).sum(), lprobs)
    (ref,) = torch.autograd.grad(log_col_dot_reference(lprobs, target, matrix).sum(), lprobs)
    torch.testing.assert_close(grad, ref)


@pytest.mark.parametrize("n, c", [(100, 10), (200, 60)])
def test_dispatch_equals_reference(n, c):
    # below _CPU_FUSED_MIN_VALUES the reference runs, above it the fused node: same numbers
    lprobs, target, matrix = inputs(n=n, c=c, scale=5.0, zeros=True, dtype=torch.float32)
    assert (n * c < _CPU_FUSED_MIN_VALUES) == (n == 100)
    weights = torch.randn(n, generator=torch.Generator().manual_seed(2))
    out, grads = value_and_grads(full_log_col_dot, lprobs, target, matrix, weights)
    ref, ref_grads = value_and_grads(log_col_dot_reference, lprobs, target, matrix, weights)
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=1e-6)
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)
    phi = FullPhi(c)
    phi.load_tensors({"matrix": matrix}, form="prob")
    torch.testing.assert_close(log_col_dot(phi, lprobs, target), ref, atol=1e-6, rtol=1e-6)


def test_bad_shapes_are_refused():
    lprobs, target, matrix = inputs()
    with pytest.raises(ValueError, match=r"expected \(N, C\) and \(C, C\)"):
        full_log_col_dot(lprobs, target, matrix[:, :3])
    with pytest.raises(ValueError, match="target"):
        full_log_col_dot(lprobs, target[:3], matrix)
    with pytest.raises(ValueError, match="dtype"):
        full_log_col_dot(lprobs, target, matrix.float())
