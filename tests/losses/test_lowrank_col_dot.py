"""lowrank_col_dot (the prob form's column product with a hand-written backward) against the plain
autograd formula and finite differences, across row blocks, in float64."""

import pytest
import torch

from fairseq_dynloss.losses import build_phi, log_col_dot
from fairseq_dynloss.losses import lowrank_col_dot as module
from fairseq_dynloss.losses.lowrank_col_dot import lowrank_col_dot, lowrank_col_dot_reference

pytestmark = pytest.mark.usefixtures("float64_default")

NAMES = ("lprobs", "diag_y", "left", "right_y")


def inputs(n=7, c=6, k=3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    lprobs = torch.log_softmax(3 * torch.randn(n, c, generator=generator), -1)
    target = torch.randint(0, c, (n,), generator=generator)
    diag_y = torch.rand(n, generator=generator)
    left = torch.rand(c, k, generator=generator)
    right_y = torch.rand(n, k, generator=generator)
    return lprobs, target, diag_y, left, right_y


def naive(lprobs, target, diag_y, left, right_y):
    """sum_j p_j M_n[j, y_n] with the per-token matrix M_n = diag(d) + L R^T written out."""
    probs = lprobs.exp()
    out = []
    for n in range(lprobs.size(0)):
        column = left @ right_y[n]
        column[target[n]] += diag_y[n]
        out.append((probs[n] * column).sum())
    return torch.stack(out)


@pytest.mark.parametrize("block_values", [2 ** 17, 12, 1])  # one block; ragged blocks of 2 rows; 1 row
def test_values_and_gradients_equal_the_plain_formula(monkeypatch, block_values):
    monkeypatch.setattr(module, "_CPU_BLOCK_VALUES", block_values)
    lprobs, target, *rest = inputs()
    fast_in = [t.clone().requires_grad_(True) for t in (lprobs, *rest)]
    plain_in = [t.clone().requires_grad_(True) for t in (lprobs, *rest)]
    fast = lowrank_col_dot(fast_in[0], target, *fast_in[1:])
    plain = lowrank_col_dot_reference(plain_in[0].exp(), target, *plain_in[1:])
    torch.testing.assert_close(fast, plain, rtol=0, atol=1e-12)
    torch.testing.assert_close(plain, naive(lprobs, target, *rest), rtol=0, atol=1e-12)
    weights = torch.randn(lprobs.size(0), generator=torch.Generator().manual_seed(1))
    (fast * weights).sum().backward()
    (plain * weights).sum().backward()
    for name, a, b in zip(NAMES, fast_in, plain_in):
        torch.testing.assert_close(a.grad, b.grad, rtol=0, atol=1e-12, msg=name)


def test_gradcheck_and_gradgradcheck_across_blocks(monkeypatch):
    monkeypatch.setattr(module, "_CPU_BLOCK_VALUES", 12)  # 2 rows per block, last block ragged
    lprobs, target, *rest = inputs(n=5, c=6, k=2, seed=2)
    tensors = [t.clone().requires_grad_(True) for t in (lprobs, *rest)]

    def function(lp, diag_y, left, right_y):
        return lowrank_col_dot(lp, target, diag_y, left, right_y)

    assert torch.autograd.gradcheck(function, tensors)
    assert torch.autograd.gradgradcheck(function, tensors)


@pytest.mark.parametrize("wanted", [("lprobs",), ("left",), ("diag_y", "right_y"), ()])
def test_only_the_requested_gradients(wanted):
    lprobs, target, *rest = inputs(seed=3)
    fast_in = [t.clone().requires_grad_(name in wanted) for name, t in zip(NAMES, (lprobs, *rest))]
    fast = lowrank_col_dot(fast_in[0], target, *fast_in[1:])
    plain = lowrank_col_dot_reference(lprobs.exp(), target, *rest)
    torch.testing.assert_close(fast, plain, rtol=0, atol=1e-12)
    if not wanted:
        assert not fast.requires_grad
        return
    grads = torch.autograd.grad(fast.sum(), [t for t in fast_in if t.requires_grad])
    plain_in = [t.clone().requires_grad_(name in wanted) for name, t in zip(NAMES, (lprobs, *rest))]
    expected = torch.autograd.grad(
        lowrank_col_dot_reference(plain_in[0].exp(), target, *plain_in[1:]).sum(),
        [t for t in plain_in if t.requires_grad])
    for a, b in zip(grads, expected):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


@pytest.mark.parametrize("parametrisation", ["diag_lowrank", "bucketed"])
def test_prob_form_equals_the_previous_implementation(parametrisation):
    # Before lowrank_col_dot, log_col_dot was log(phi.col_dot(exp(lprobs), target)) by autograd.
    generator = torch.Generator().manual_seed(4)
    phi = build_phi(parametrisation, 40, rank=4, counts=list(range(40, 0, -1)), num_buckets=3)
    phi.load_tensors({k: torch.rand(v.shape, generator=generator) for k, v in phi.tensors().items()},
                     form="prob")
    logits = (4 * torch.randn(33, 40, generator=generator)).requires_grad_(True)
    target = torch.randint(0, 40, (33,), generator=generator)
    weights = torch.randn(33, generator=generator)
    fast = log_col_dot(phi, torch.log_softmax(logits, -1), target)
    (fast_grad,) = torch.autograd.grad((fast * weights).sum(), logits)
    before = torch.log(phi.col_dot(torch.log_softmax(logits, -1).exp(), target))
    (before_grad,) = torch.autograd.grad((before * weights).sum(), logits)
    torch.testing.assert_close(fast, before, rtol=0, atol=1e-6)
    torch.testing.assert_close(fast_grad, before_grad, rtol=0, atol=1e-6)
    dense = torch.log(torch.softmax(logits, -1) @ phi.prob_matrix())[torch.arange(33), target]
    torch.testing.assert_close(fast, dense, rtol=0, atol=1e-12)


def test_empty_batch_and_bad_shapes():
    lprobs, target, diag_y, left, right_y = inputs()
    empty = lowrank_col_dot(lprobs[:0], target[:0], diag_y[:0], left, right_y[:0])
    assert empty.shape == (0,)
    with pytest.raises(ValueError, match=r"left \(5, 3\); expected \(N, C\) and \(C, k\)"):
        lowrank_col_dot(lprobs, target, diag_y, left[:5], right_y)
    with pytest.raises(ValueError, match=r"right_y \(7, 2\); expected \(7,\), \(7,\), \(7, 3\)"):
        lowrank_col_dot(lprobs, target, diag_y, left, right_y[:, :2])
