"""ALA health warnings: each condition is reported once when it starts, again only after it
cleared; thresholds against hand-computed entropies."""

import math

import pytest
import torch

from fairseq_dynloss.controllers.health import ALAHealth


def entropy(p):
    return -sum(x * math.log(x) for x in p if x > 0)


def test_entropy_collapse_is_reported_once_per_episode():
    health = ALAHealth(entropy_floor=0.1)
    uniform, peaked = entropy([1 / 3] * 3), entropy([0.98, 0.01, 0.01])  # 1.099, 0.112
    nearly_one = entropy([0.995, 0.0025, 0.0025])  # 0.0349
    assert health.check(1, uniform) == []
    assert health.check(2, peaked) == []  # above the floor
    (message,) = health.check(3, nearly_one)
    assert "entropy collapsed to 0.0349" in message and "step 3" in message
    assert health.check(4, nearly_one) == []  # still collapsed: not repeated
    assert health.check(5, uniform) == []
    assert len(health.check(6, nearly_one)) == 1  # a new collapse


def test_every_entry_at_the_clamp_is_reported_and_one_free_entry_is_not():
    health = ALAHealth()
    pinned = torch.tensor([-0.1, 0.1, 0.1, -0.1], dtype=torch.float64)
    (message,) = health.check(7, 1.0, pinned, -0.1, 0.1)
    assert "all 4 controlled entries sit at the clamp [-0.1, 0.1]" in message
    assert "2 at the low bound, 2 at the high one" in message
    assert health.check(8, 1.0, pinned, -0.1, 0.1) == []
    free = torch.tensor([-0.1, 0.05, 0.1, -0.1], dtype=torch.float64)
    assert health.check(9, 1.0, free, -0.1, 0.1) == []
    assert len(health.check(10, 1.0, pinned, -0.1, 0.1)) == 1


def test_no_clamp_no_clamp_warning():
    assert ALAHealth().check(1, 1.0, torch.zeros(3), None, None) == []


def test_conditions_checked_separately_keep_their_state():
    health = ALAHealth()
    pinned = torch.tensor([0.1, -0.1], dtype=torch.float64)
    assert len(health.check(1, values=pinned, low=-0.1, high=0.1)) == 1
    assert health.check(2, entropy=1.0) == []  # no values: the clamp state is kept
    assert health.check(3, values=pinned, low=-0.1, high=0.1) == []
    assert len(health.check(4, entropy=0.01)) == 1
    assert health.check(5, values=pinned * 0.5, low=-0.1, high=0.1) == []
    assert health.check(6, entropy=0.01) == []


@pytest.mark.parametrize("floor", [0.0, -1.0, math.log(3), 2.0])
def test_a_floor_outside_the_entropy_range_is_refused(floor):
    with pytest.raises(ValueError, match="entropy_floor"):
        ALAHealth(entropy_floor=floor)
