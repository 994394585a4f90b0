"""ALA rewards (discounting, direction-aware sign) and the replay memory."""

import math

import pytest
import torch

from fairseq_dynloss.controllers import (
    METRIC_DIRECTION, ClassCredit, ControllerError, ReplayMemory, Transition, WindowReward, check_window,
    class_means, discounted_window_metric, higher_is_better, reward,
)


def test_discounted_window_metric_by_hand():
    assert discounted_window_metric([1.0, 2.0, 3.0], 0.5) == pytest.approx(0.25 * 1 + 0.5 * 2 + 3)
    assert discounted_window_metric([1.0, 2.0, 3.0], 1.0) == pytest.approx(6.0)
    assert discounted_window_metric([0.7], 0.3) == pytest.approx(0.7)


@pytest.mark.parametrize("gamma", [0.0, -0.5, 1.5, float("nan"), True])
def test_gamma_outside_unit_interval(gamma):
    with pytest.raises(ControllerError, match=r"gamma=.*expected a discount in \(0, 1\]"):
        discounted_window_metric([1.0], gamma)


def test_window_size_and_values_checked():
    with pytest.raises(ControllerError, match=r"window K=0; expected an integer >= 1"):
        discounted_window_metric([], 0.9)
    with pytest.raises(ControllerError, match=r"window K=0"):
        check_window(0)
    with pytest.raises(ControllerError, match=r"window K=-2"):
        WindowReward("error", -2, 0.9)
    with pytest.raises(ControllerError, match="finite metric value"):
        discounted_window_metric([1.0, math.nan], 0.9)


def test_reward_sign_both_directions():
    # error / loss: lower is better, r = sign(M_t - M_{t+1})
    assert reward(0.30, 0.20, False) == 1.0
    assert reward(0.20, 0.30, False) == -1.0
    assert reward(0.20, 0.20, False) == 0.0
    assert reward(0.30, 0.20, "error") == 1.0 and reward(2.0, 2.5, "loss") == -1.0
    # AUCPR / recall / BLEU: flipped
    assert reward(0.30, 0.20, True) == -1.0
    assert reward(0.20, 0.30, "aucpr") == 1.0
    assert reward(20.0, 19.0, "bleu") == -1.0
    assert reward(0.5, 0.6, "recall@4") == 1.0
    assert METRIC_DIRECTION == {"error": "lower", "loss": "lower", "aucpr": "higher",
                                "recall": "higher", "bleu": "higher", "expected_accuracy": "higher"}
    with pytest.raises(ControllerError, match="unknown reward metric 'accuracy'; expected one of"):
        higher_is_better("accuracy")
    with pytest.raises(ControllerError, match="unknown reward metric 'f1'"):
        reward(0.1, 0.2, "f1")
    with pytest.raises(ControllerError, match="unknown reward metric"):
        WindowReward("top1", 2, 0.9)


def test_window_reward_sequence_and_resume():
    tracker = WindowReward("error", window=2, gamma=0.5)
    assert tracker.add(0.4) is None and tracker.add(0.4) is None  # first window sets M_0 = 0.6
    assert tracker.add(0.2) is None
    assert tracker.add(0.3) == 1.0  # M_1 = 0.1 + 0.3 = 0.4 < 0.6
    assert tracker.add(0.5) is None
    resumed = WindowReward("error", window=2, gamma=0.5)
    resumed.load_state_dict(tracker.state_dict())
    assert resumed.add(0.5) == tracker.add(0.5) == -1.0  # M_2 = 0.75 > 0.4
    with pytest.raises(ControllerError, match="window=2; expected 3"):
        WindowReward("error", 3, 0.5).load_state_dict(tracker.state_dict())


def _fill(memory, n, child=0, size=2):
    for k in range(n):
        memory.add(torch.full((size, 3), float(k)), torch.tensor([1, -1] * (size // 2)), reward=k % 2,
                   next_state=torch.full((size, 3), k + 1.0), child=child)


def test_memory_capacity_and_fifo():
    memory = ReplayMemory(3, seed=0)
    _fill(memory, 5)
    assert len(memory) == 3
    assert [t.step for t in memory.transitions] == [2, 3, 4]
    assert memory.transitions[0].state[0, 0].item() == 2.0


def test_memory_seeded_sampling():
    a, b = ReplayMemory(10, seed=7), ReplayMemory(10, seed=7)
    _fill(a, 8)
    _fill(b, 8)
    sa = [t.step for t in a.sample(5)]
    assert sa == [t.step for t in b.sample(5)] and len(set(sa)) == 5
    assert len(a.sample(100)) == 8
    c = ReplayMemory(10, seed=8)
    _fill(c, 8)
    assert [[t.step for t in c.sample(8)] for _ in range(3)] != [[t.step for t in a.sample(8)] for _ in range(3)]


def test_memory_state_round_trip(tmp_path):
    memory = ReplayMemory(4, seed=3)
    _fill(memory, 6, child=0)
    _fill(memory, 1, child=2)
    path = tmp_path / "memory.pt"
    torch.save(memory.state_dict(), path)
    restored = ReplayMemory(4, seed=999)
    restored.load_state_dict(torch.load(path, weights_only=True))
    assert [(t.child, t.step) for t in restored.transitions] == [(t.child, t.step) for t in memory.transitions]
    assert [t.step for t in restored.sample(3)] == [t.step for t in memory.sample(3)]
    restored.add(torch.zeros(2, 3), torch.tensor([0, 0]), 0.0)
    assert restored.transitions[-1].step == 6
    with pytest.raises(ControllerError, match="capacity 4; expected 5"):
        ReplayMemory(5).load_state_dict(memory.state_dict())


def test_memory_errors():
    with pytest.raises(ControllerError, match="capacity=0"):
        ReplayMemory(0)
    memory = ReplayMemory(2)
    with pytest.raises(ControllerError, match="empty replay memory"):
        memory.sample(1)
    with pytest.raises(ControllerError, match=r"shape \(2,\)"):
        memory.add(torch.zeros(2, 3), torch.tensor([0]), 1.0)
    with pytest.raises(ControllerError, match="reward=nan"):
        memory.add(torch.zeros(2, 3), torch.tensor([0, 1]), math.nan)
    with pytest.raises(ControllerError, match=r"\{-1, 0, 1\}"):
        memory.extend([Transition(torch.zeros(1, 3), torch.tensor([3]), 1.0)])
    assert len(memory) == 0


def test_window_reward_against_a_moving_average_by_hand():
    # window 1, gamma 1: M_t is the value itself; A_1 = 1, A_t = 0.5 A_{t-1} + 0.5 M_t
    tracker = WindowReward("loss", window=1, gamma=1.0, average=0.5)
    assert tracker.add(1.0) is None
    assert tracker.add(0.8) == 1.0  # 0.8 < A_1 = 1; A_2 = 0.9
    assert tracker.add(0.85) == 1.0  # worse than the previous window (0.8) but below A_2 = 0.9
    assert tracker.reference == pytest.approx(0.875)
    assert tracker.add(0.9) == -1.0  # above A_3 = 0.875
    resumed = WindowReward("loss", window=1, gamma=1.0, average=0.5)
    resumed.load_state_dict(tracker.state_dict())
    assert resumed.add(0.88) == tracker.add(0.88) == 1.0  # A_4 = 0.8875
    plain = WindowReward("loss", window=1, gamma=1.0)  # average 0: the previous window
    assert [plain.add(v) for v in (1.0, 0.8, 0.85, 0.9)] == [None, 1.0, -1.0, -1.0]
    with pytest.raises(ControllerError, match="average=0.5; expected 0.0"):
        plain.load_state_dict(tracker.state_dict())
    with pytest.raises(ControllerError, match=r"reward average=1.0; expected a decay in \[0, 1\)"):
        WindowReward("loss", 1, 1.0, average=1.0)


def test_expected_accuracy_is_a_higher_is_better_metric():
    assert higher_is_better("expected_accuracy") and not higher_is_better("loss")
    assert reward(50.0, 51.0, "expected_accuracy") == 1.0
def test_sampled_window_keeps_the_slides_weights_on_the_measured_updates():
    from fairseq_dynloss.controllers import discounted_window_metric, measures_metric, sampled_window

    values, gamma, K, n = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0], 0.7, 6, 3
    window, discount = sampled_window(K, n, gamma)
    measured = [v for j, v in enumerate(values, 1) if measures_metric(j, n)]
    assert (window, measured) == (2, [4.0, 9.0])
    # sum over j = n, 2n, ..., K of gamma^(K-j) M_j, by hand: gamma^3 * 4 + 9
    assert discounted_window_metric(measured, discount) == pytest.approx(0.7 ** 3 * 4 + 9)
    assert sampled_window(K, 1, gamma) == (K, gamma)  # n = 1: the slides' own
    with pytest.raises(ControllerError, match="metric_every=4 does not divide window K=6"):
        sampled_window(K, 4, gamma)


def test_class_means_by_hand():
    values = torch.tensor([1.0, 3.0, 10.0, 0.0])
    labels = torch.tensor([0, 0, 2, 2])
    means = class_means(values, labels, 4)
    assert means[0] == 2.0 and means[2] == 5.0
    assert math.isnan(means[1]) and math.isnan(means[3])  # classes without examples


def test_class_credit_rewards_each_pair_by_its_two_classes():
    """r(i, j) = sign of the change of m(i) + m(j) (flipped when lower is better); (i, i): m(i)."""
    pairs = torch.tensor([[0, 1], [1, 0], [0, 2], [2, 2], [1, 3]])
    credit = ClassCredit("error", pairs, 4)
    assert credit.add(torch.tensor([10.0, 20.0, 30.0, math.nan], dtype=torch.float64)) is None
    # errors: class 0 -5, class 1 +2, class 2 +1, class 3 unknown (NaN: unchanged)
    r = credit.add(torch.tensor([5.0, 22.0, 31.0, 40.0], dtype=torch.float64))
    assert r.tolist() == [1.0, 1.0, 1.0, -1.0, -1.0]  # (0,1): -3, (0,2): -4, (2,2): +1, (1,3): +2
    higher = ClassCredit("expected_accuracy", pairs, 4)
    higher.add(torch.tensor([10.0, 20.0, 30.0, 0.0]))
    assert higher.add(torch.tensor([5.0, 25.0, 30.0, 0.0])).tolist() == [0.0, 0.0, -1.0, 0.0, 1.0]
    restored = ClassCredit("error", pairs, 4)
    restored.load_state_dict(credit.state_dict())
    nxt = torch.tensor([1.0, 1.0, 1.0, 1.0], dtype=torch.float64)
    assert torch.equal(restored.add(nxt), credit.add(nxt))


def test_class_credit_errors():
    with pytest.raises(ControllerError, match=r"class pairs in \[0, 3\); a bucketed Phi's elements are buckets"):
        ClassCredit("loss", torch.tensor([[0, 3]]), 3)
    credit = ClassCredit("loss", torch.tensor([[0, 1]]), 3)
    with pytest.raises(ControllerError, match=r"per-class metrics have shape \(2,\); expected \(3,\)"):
        credit.add(torch.zeros(2))
    with pytest.raises(ControllerError, match="infinite"):
        credit.add(torch.tensor([0.0, math.inf, 0.0]))
    with pytest.raises(ControllerError, match="unknown reward metric 'bleu2'"):
        ClassCredit("bleu2", torch.tensor([[0, 1]]), 3)


def test_memory_keeps_per_element_rewards():
    memory = ReplayMemory(4, seed=0)
    t = memory.add(torch.zeros(3, 2), torch.tensor([1, 0, -1]), torch.tensor([1.0, -1.0, 0.0]))
    assert t.reward.dtype == torch.float64 and t.reward.tolist() == [1.0, -1.0, 0.0]
    restored = ReplayMemory(4, seed=0)
    restored.load_state_dict(memory.state_dict())
    assert torch.equal(restored.transitions[0].reward, t.reward)
    with pytest.raises(ControllerError, match=r"reward has shape \(2,\); expected \(3,\), one per state row"):
        memory.add(torch.zeros(3, 2), torch.tensor([1, 0, -1]), torch.tensor([1.0, -1.0]))
    with pytest.raises(ControllerError, match="reward"):
        memory.add(torch.zeros(3, 2), torch.tensor([1, 0, -1]), torch.tensor([1.0, math.nan, 0.0]))
