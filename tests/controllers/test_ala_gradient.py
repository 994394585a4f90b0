"""A confident student under the default loss form (paper, scale 1/sqrt(C)) with every controlled
Phi entry at the default clamp still gets gradient from the Phi term (issue 15): measured with
autograd on the logits, against the NLL half of a 0.5 mix."""

import math

import pytest
import torch

from fairseq_dynloss.losses import build_phi, dynamic_loss
from fairseq_dynloss.trainer.ala import AUTO_CLAMP_PAPER

C = 10


def confident_student():
    """log p_y ~ -4e-6 and log p_j ~ -20 for the wrong classes (a student that fits its data)."""
    g = torch.Generator().manual_seed(0)
    target = torch.arange(200) % C
    logits = 2.0 * torch.randn(200, C, generator=g, dtype=torch.float64)
    logits[torch.arange(200), target] += 20.0
    return logits, target


def gradient_norms(phi, logits, target):
    """Per-example L2 norms of d(0.5 l_Phi)/dz and d(0.5 NLL)/dz (autograd, float64)."""
    norms = []
    for weight in (0.0, 1.0):  # nll_weight 0: the Phi term alone; 1: the NLL alone
        z = logits.clone().requires_grad_(True)
        out = dynamic_loss(torch.log_softmax(z, 1), target, phi, scale=1 / math.sqrt(C), nll_weight=weight)
        (0.5 * out.loss).backward()
        norms.append(z.grad.norm(dim=1))
    return norms


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_the_phi_term_keeps_gradient_at_the_clamp(sign):
    logits, target = confident_student()
    phi = build_phi("full", C)
    bound = AUTO_CLAMP_PAPER[1] if sign > 0 else AUTO_CLAMP_PAPER[0]
    phi.matrix.data = (torch.eye(C) + bound * (1 - torch.eye(C))).double()
    dyn, nll = gradient_norms(phi, logits, target)
    share = (dyn / (dyn + nll)).mean().item()
    # measured: 0.9988 of the gradient (the off-diagonal terms Phi_yj d log p_j / dz_j ~ Phi_yj
    # do not vanish with the sigmoid's slope as fast as the NLL's 1 - p_y does)
    assert share > 0.99
    # at Phi = I the same student's Phi term carries 0.073: the clamp is not where gradient dies
    identity = build_phi("full", C).double()
    dyn0, nll0 = gradient_norms(identity, logits, target)
    assert (dyn0 / (dyn0 + nll0)).mean().item() == pytest.approx(0.0733, abs=0.002)
