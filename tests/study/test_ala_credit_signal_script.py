"""scripts/ala_credit_signal.py: the effect of an action on its reward, by hand on synthetic
transitions, for the per-element reward and for the window reward."""

import csv
import os
import sys

import torch

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "scripts"))
import ala_credit_signal  # noqa: E402


def write_run(folder, transitions, window_rewards):
    os.makedirs(folder)
    memory = {"transitions": transitions}
    torch.save({"controller": {"controller": {"memory": memory}}}, os.path.join(folder, "checkpoint_last.pt"))
    with open(os.path.join(folder, "ala_log.csv"), "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["window", "reward"])
        writer.writeheader()
        writer.writerow({"window": 0, "reward": ""})  # the first window has no reward
        for w, r in enumerate(window_rewards, 1):
            writer.writerow({"window": w, "reward": r})


def test_effects_by_hand(tmp_path):
    actions = torch.tensor([1, -1, 0, 1])
    # first half: the element reward is the action itself (effect 2); second half: the opposite
    transitions = [{"action": actions, "reward": actions.double(), "step": 0},
                   {"action": actions, "reward": -actions.double(), "step": 1}]
    write_run(tmp_path / "run", transitions, [1.0, -1.0])
    out = ala_credit_signal.effects(str(tmp_path / "run"))
    assert out["element"] == [2.0, -2.0]
    assert out["window"] == [0.0, 0.0]  # one reward for every element: no difference by action
    assert ala_credit_signal.interval([1.0, 3.0]).startswith("+2.0000 [")


def test_horizon_effect_by_hand(tmp_path):
    """H = 2: the action of window t against r(t+1) + r(t+2), on the chosen elements only."""
    actions = [torch.tensor([1, -1]), torch.tensor([-1, 1]), torch.tensor([1, 1])]
    rewards = [torch.tensor([1.0, 0.0]), torch.tensor([1.0, -1.0]), torch.tensor([0.0, 0.0])]
    transitions = [{"action": a, "reward": r, "step": t} for t, (a, r) in enumerate(zip(actions, rewards))]
    write_run(tmp_path / "run", transitions, [0.0, 0.0, 0.0])
    first = torch.tensor([True, False])
    # element 0: a = +1 at t = 0 (sum 1 + 1 = 2), a = -1 at t = 1 (sum 1 + 0 = 1)
    assert ala_credit_signal.horizon_effect(str(tmp_path / "run"), 2, first) == 1.0
    # element 1: a = -1 at t = 0 (0 - 1 = -1), a = +1 at t = 1 (-1 + 0 = -1)
    assert ala_credit_signal.horizon_effect(str(tmp_path / "run"), 2, ~first) == 0.0
    assert list(ala_credit_signal.pair_groups("clean")) == ["all"]
    groups = ala_credit_signal.pair_groups("pairflip40")
    assert int(groups["flipped"].sum()) == 20 and int(groups["other"].sum()) == 70
