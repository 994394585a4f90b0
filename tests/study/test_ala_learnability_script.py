"""scripts/ala_learnability.py: the raise effect against scipy and by hand, the ridge fit against
least squares, a planted state-dependent effect recovered by the held-out policy, the flipped
pairs of MNIST-1D's pair-flip noise, and each row's most confused pair."""

import math
import os
import sys

import pytest
import torch
from scipy import stats

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "scripts"))
import ala_learnability  # noqa: E402


def write_run(folder, states, actions, rewards):
    """A run folder whose replay memory holds these (W, P, F) / (W, P) / (W, P) decisions."""
    folder.mkdir(parents=True)
    memory = {"transitions": [{"state": s, "action": a, "reward": r} for s, a, r in zip(states, actions, rewards)]}
    torch.save({"controller": {"controller": {"memory": memory}}}, folder / "checkpoint_last.pt")
    return str(folder)


def test_raise_effect_by_hand_and_against_scipy():
    actions = torch.tensor([1.0, 1.0, -1.0, -1.0, 0.0, 1.0])
    rewards = torch.tensor([2.0, 4.0, 1.0, 0.0, 100.0, 3.0])  # a = 0 is ignored
    effect, t, p = ala_learnability.raise_effect(actions, rewards)
    assert math.isclose(effect, 3.0 - 0.5)
    ref = stats.ttest_ind([2, 4, 3], [1, 0], equal_var=False, alternative="greater")
    assert math.isclose(t, ref.statistic) and math.isclose(p, ref.pvalue)


def test_ridge_is_least_squares_as_lambda_vanishes():
    g = torch.Generator().manual_seed(0)
    design = torch.randn(50, 4, generator=g, dtype=torch.float64)
    target = torch.randn(50, generator=g, dtype=torch.float64)
    expected = torch.linalg.lstsq(design, target[:, None]).solution[:, 0]
    assert torch.allclose(ala_learnability.ridge(design, target, lam=1e-12), expected, atol=1e-9)
    x, a = torch.tensor([[2.0, 3.0]]), torch.tensor([-1.0])
    assert ala_learnability.interaction_design(x, a).tolist() == [[1.0, 2.0, 3.0, -1.0, -2.0, -3.0]]


def test_held_out_policy_recovers_a_planted_state_dependent_effect(tmp_path):
    """Raising pays +1 where feature 0 is +1 (the 'flipped' elements) and costs 1 where it is -1
    (feature 1 is noise): the held-out fit raises exactly the flipped elements, where a raise
    then gains 2 over a lowering, and lowers the others, where it loses 2."""
    g = torch.Generator().manual_seed(1)
    flipped = torch.tensor([True, False, True, False, False, False])
    folders = []
    for k in range(4):
        x = torch.randn(30, 6, 2, generator=g)
        x[:, :, 0] = torch.where(flipped, 1.0, -1.0)
        a = torch.randint(-1, 2, (30, 6), generator=g).float()
        r = a * torch.sign(x[:, :, 0]) + 0.1 * torch.randn(30, 6, generator=g)
        folders.append(write_run(tmp_path / f"seed{k}", x, a, r))
    line = ala_learnability.held_out_policy(folders, flipped)
    assert "raise for 100% of the flipped pairs' decisions and 0% of the others'" in line
    said = [float(v.split()[0].rstrip(",;")) for v in line.split("says raise ")[1:2] + line.split("says lower ")[1:2]]
    assert said[0] == pytest.approx(2.0, abs=0.1) and said[1] == pytest.approx(-2.0, abs=0.1)


def test_oracle_bound_pools_runs(tmp_path):
    """Per run, the mean of the runs' effects; pooled, the effect over all their decisions at once
    (runs of 2 and 3 decisions, so the two differ)."""
    folders = [write_run(tmp_path / "r1", torch.zeros(2, 2, 1), torch.tensor([[1.0, -1.0]] * 2),
                         torch.tensor([[1.0, 0.0], [3.0, 1.0]])),  # 2 - 0.5 = 1.5
               write_run(tmp_path / "r2", torch.zeros(3, 2, 1), torch.tensor([[1.0, -1.0]] * 3),
                         torch.tensor([[10.0, 0.0], [12.0, 2.0], [14.0, 4.0]]))]  # 12 - 2 = 10
    lines = ala_learnability.oracle_bound(folders, torch.tensor([True, True]), pools=[2])
    assert lines[0].startswith("per run: effect +5.750")
    assert lines[1].startswith("pooled over 2 runs: +6.600")  # 40 / 5 - 7 / 5


def test_flipped_pairs_are_i_to_i_plus_1_and_reversed():
    forward, reverse = ala_learnability.flipped_pairs(0.4)
    pairs = ala_learnability.controlled_pairs(10)
    assert sorted(pairs[forward].tolist()) == sorted([i, (i + 1) % 10] for i in range(10))
    assert sorted(pairs[reverse].tolist()) == sorted([(i + 1) % 10, i] for i in range(10))


def test_row_most_confused_reads_the_second_half_per_row(tmp_path):
    """Pairs of 3 classes in controlled order (0,1), (0,2), (1,0), (1,2), (2,0), (2,1)."""
    first = torch.full((6, 1), -9.0)
    second = torch.tensor([[0.5], [-1.0], [2.0], [3.0], [-2.0], [0.0]])
    folder = write_run(tmp_path / "run", torch.stack([first, second]), torch.zeros(2, 6), torch.zeros(2, 6))
    out = ala_learnability.row_most_confused([folder], num_classes=3)
    assert out.tolist() == [-1.0, 2.0, -2.0]


def test_class_mean_probabilities_by_hand():
    probs = torch.tensor([[0.5, 0.5], [0.9, 0.1], [0.2, 0.8]])
    out = ala_learnability.class_mean_probabilities(probs, torch.tensor([0, 0, 1]), 2)
    assert torch.allclose(out, torch.tensor([[0.7, 0.3], [0.2, 0.8]]))
