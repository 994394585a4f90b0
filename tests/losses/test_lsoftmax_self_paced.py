"""L-Softmax against its definition; self-paced weights against the closed form."""

import math

import pytest
import torch

from fairseq_dynloss.losses import (
    chebyshev_cos_multiple,
    lsoftmax_logits,
    self_paced_loss,
    self_paced_threshold,
    self_paced_weights,
)


def reference_psi(theta, m):
    k = min(int(theta * m / math.pi), m - 1)
    return (-1) ** k * math.cos(m * theta) - 2 * k


@pytest.mark.parametrize("m", [1, 2, 3, 4])
def test_lsoftmax_target_logit_is_norms_times_psi(float64_default, m):
    torch.manual_seed(m)
    x, w = torch.randn(12, 5), torch.randn(4, 5)
    y = torch.randint(0, 4, (12,))
    logits = lsoftmax_logits(x, w, y, m)
    plain = x @ w.t()
    for n in range(12):
        theta = math.acos((plain[n, y[n]] / (w[y[n]].norm() * x[n].norm())).item())
        expected = (w[y[n]].norm() * x[n].norm()).item() * reference_psi(theta, m)
        assert logits[n, y[n]].item() == pytest.approx(expected, rel=1e-9, abs=1e-9)
        others = [c for c in range(4) if c != y[n]]
        assert torch.equal(logits[n, others], plain[n, others])


def test_lsoftmax_with_margin_one_is_the_plain_linear_layer(float64_default):
    x, w, y = torch.randn(7, 3), torch.randn(5, 3), torch.randint(0, 5, (7,))
    torch.testing.assert_close(lsoftmax_logits(x, w, y, 1), x @ w.t())


def test_lsoftmax_beta_interpolates_and_margin_only_lowers_the_target_logit(float64_default):
    x, w, y = torch.randn(9, 4), torch.randn(3, 4), torch.randint(0, 3, (9,))
    plain, margin = x @ w.t(), lsoftmax_logits(x, w, y, 3)
    assert (margin.gather(1, y[:, None]) <= plain.gather(1, y[:, None]) + 1e-12).all()
    beta = 2.0
    torch.testing.assert_close(lsoftmax_logits(x, w, y, 3, beta), (beta * plain + margin) / (1 + beta))


def test_psi_is_continuous_and_decreasing():
    theta = torch.linspace(0, math.pi, 2001, dtype=torch.float64)
    for m in (2, 3, 4):
        k = torch.floor(theta * m / math.pi).clamp(max=m - 1)
        psi = (1 - 2 * (k % 2)) * chebyshev_cos_multiple(torch.cos(theta), m) - 2 * k
        assert (psi.diff() <= 1e-12).all()
        assert psi[0].item() == pytest.approx(1.0) and psi[-1].item() == pytest.approx(1 - 2 * m)


def test_lsoftmax_gradient_is_finite_when_features_align_with_weights():
    w = torch.randn(3, 4)
    x = w[[0, 1]].clone().requires_grad_(True)
    lsoftmax_logits(x, w, torch.tensor([0, 1]), 4).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_lsoftmax_rejects_bad_margins():
    with pytest.raises(ValueError, match="margin"):
        lsoftmax_logits(torch.randn(2, 3), torch.randn(4, 3), torch.tensor([0, 1]), 0)


def test_self_paced_keeps_only_examples_below_the_threshold():
    losses = torch.tensor([0.1, 2.0, 0.5, 3.0], requires_grad=True)
    assert self_paced_weights(losses, 1.0).tolist() == [1.0, 0.0, 1.0, 0.0]
    value = self_paced_loss(losses, 1.0)
    assert value.item() == pytest.approx((0.1 + 0.5) / 4)
    value.backward()
    assert losses.grad.tolist() == [0.25, 0.0, 0.25, 0.0]
    # A threshold above every loss is the plain mean.
    assert self_paced_loss(losses, 10.0).item() == pytest.approx(losses.mean().item())


def test_self_paced_threshold_grows_geometrically():
    assert self_paced_threshold(3, 2.0, 1.5) == pytest.approx(2.0 * 1.5 ** 3)
    with pytest.raises(ValueError):
        self_paced_threshold(0, 1.0, 0.9)
