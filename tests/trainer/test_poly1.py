"""Poly-1 (loss=poly1): CE + eps (1 - p_y) against hand values, CE at eps = 0, gradient, errors."""

import math

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from fairseq_dynloss.trainer.objectives import Poly1Objective
from fairseq_dynloss.trainer.registry import build_objective


def test_hand_values():
    # logits (0, ln 3): p = (1/4, 3/4). Target 1: CE = ln(4/3), 1 - p_y = 1/4; target 0: ln 4, 3/4.
    logits = torch.tensor([[0.0, math.log(3.0)], [0.0, math.log(3.0)]], dtype=torch.float64)
    target = torch.tensor([1, 0])
    loss = Poly1Objective(2.0)(logits, target)
    expected = ((math.log(4 / 3) + 2 * 0.25) + (math.log(4) + 2 * 0.75)) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-12)


def test_epsilon_zero_is_cross_entropy_and_gradient_matches_the_formula():
    torch.manual_seed(0)
    logits = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    target = torch.randint(0, 5, (6,))
    torch.testing.assert_close(Poly1Objective(0.0)(logits, target), F.cross_entropy(logits, target))
    # d/dz [-log p_y - eps p_y] = (p - onehot) - eps p_y (onehot - p), per example, / N
    eps = 0.7
    Poly1Objective(eps)(logits, target).backward()
    p = logits.detach().softmax(1)
    onehot = F.one_hot(target, 5).double()
    p_y = p.gather(1, target[:, None])
    torch.testing.assert_close(logits.grad, ((p - onehot) - eps * p_y * (onehot - p)) / 6)


def test_registry_builds_it_from_the_config():
    objective = build_objective(OmegaConf.create({"name": "poly1", "epsilon": 1.0}), 10, 1)
    assert isinstance(objective, Poly1Objective) and objective.epsilon == 1.0


@pytest.mark.parametrize("epsilon", [-1.5, float("nan"), float("inf")])
def test_bad_epsilon_is_refused(epsilon):
    with pytest.raises(ValueError, match="loss.epsilon="):
        Poly1Objective(epsilon)
