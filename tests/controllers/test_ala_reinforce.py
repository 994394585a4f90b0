"""REINFORCE learner: returns and baseline by hand, bandits solved, controller files."""

import pytest
import torch

from fairseq_dynloss.controllers import (
    ControllerError, PairPolicy, ReinforceLearner, ReplayMemory, Transition, load_controller,
    save_controller,
)


def test_returns_and_baseline_by_hand():
    learner = ReinforceLearner(PairPolicy(2, 4, seed=0), lr=0.1, baseline_decay=0.9)
    learner.baseline = 0.5
    assert learner.returns([1.0, -1.0, 1.0]) == pytest.approx([-0.5, -1.0, 0.5])
    step = [Transition(torch.zeros(1, 2), torch.tensor([1]), 1.0)]
    stats = learner.update([step, step])
    assert stats["baseline"] == pytest.approx(0.9 * 0.5 + 0.1 * 1.0) == learner.baseline
    assert stats["mean_advantage"] == pytest.approx(0.5)
    # a positive advantage made the taken action more likely
    assert learner.policy.log_prob(torch.zeros(1, 2), torch.tensor([1])).exp().item() > 1 / 3


def test_reinforce_solves_three_armed_bandit():
    policy = PairPolicy(3, hidden=16, seed=0)
    learner = ReinforceLearner(policy, lr=0.05, baseline_decay=0.9)
    act_gen, env_gen = torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)
    win_prob = {-1: 0.2, 0: 0.5, 1: 0.8}  # arm +1 is optimal
    state = torch.ones(1, 3)
    for _ in range(30):
        batch = []
        for _ in range(16):
            with torch.no_grad():
                action, _ = policy.act(state, act_gen)
            r = 1.0 if torch.rand((), generator=env_gen).item() < win_prob[action.item()] else -1.0
            batch.append([Transition(state, action, r)])
        learner.update(batch)
    assert policy.log_prob(state, torch.tensor([1])).exp().item() > 0.9


def test_reinforce_solves_contextual_bandit_with_shared_reward_and_replay():
    """ALA-shaped: several elements per step, one shared reward, two children, replay memory."""
    policy = PairPolicy(4, hidden=16, seed=0)
    learner = ReinforceLearner(policy, lr=0.01, baseline_decay=0.9)
    memory = ReplayMemory(16, seed=3)
    act_gen, env_gen = torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)
    contexts, best = torch.eye(4), torch.tensor([1, -1, 0, 1])
    for _ in range(150):
        for child in (0, 1):
            idx = torch.randint(0, 4, (6,), generator=env_gen)
            with torch.no_grad():
                actions, _ = policy.act(contexts[idx], act_gen)
            accuracy = (actions == best[idx]).float().mean().item()
            memory.add(contexts[idx], actions, 2 * accuracy - 1, child=child)
        learner.update(memory.sample_trajectories(8, horizon=1))
    with torch.no_grad():
        p_best = torch.softmax(policy(contexts), -1)[torch.arange(4), best + 1]
    assert (p_best > 0.9).all(), p_best


def test_controller_file_round_trip(tmp_path):
    policy = PairPolicy(6, hidden=8, seed=0)
    learner = ReinforceLearner(policy, lr=0.01)
    memory = ReplayMemory(8, seed=0)
    for k in range(3):
        memory.add(torch.randn(5, 6, generator=torch.Generator().manual_seed(k)), torch.tensor([1, 0, -1, 1, 0]), 1.0)
    learner.update(memory.sample_trajectories(2, 2))
    path = str(tmp_path / "controller.pt")
    save_controller(path, learner, memory, window=4, metric="error")
    loaded = load_controller(path, expected_feature_size=6)
    feats = torch.randn(7, 6)
    torch.testing.assert_close(loaded.policy(feats), policy(feats))
    assert loaded.extra == {"window": 4, "metric": "error"}
    resumed = ReinforceLearner(loaded.policy, lr=0.01)
    resumed.load_state_dict(loaded.learner)
    resumed_memory = ReplayMemory(8, seed=123)
    resumed_memory.load_state_dict(loaded.memory)
    assert resumed.baseline == learner.baseline and resumed.num_updates == 1
    # the next update is identical in the original and the resumed controller
    learner.update(memory.sample_trajectories(2, 2))
    resumed.update(resumed_memory.sample_trajectories(2, 2))
    for a, b in zip(policy.parameters(), resumed.policy.parameters()):
        torch.testing.assert_close(a, b)
    # policy-only file (transfer)
    save_controller(str(tmp_path / "policy.pt"), policy)
    transferred = load_controller(str(tmp_path / "policy.pt"))
    assert transferred.learner is None and transferred.memory is None


def test_controller_errors(tmp_path):
    path = str(tmp_path / "controller.pt")
    save_controller(path, PairPolicy(6, hidden=8))
    with pytest.raises(ControllerError, match="feature size 6; this run builds states of feature size 8"):
        load_controller(path, expected_feature_size=8)
    with pytest.raises(ControllerError, match="does not exist"):
        load_controller(str(tmp_path / "missing.pt"))
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    with pytest.raises(ControllerError, match="not an ALA controller file"):
        load_controller(str(tmp_path / "tensor.pt"))
    (tmp_path / "garbage.pt").write_bytes(b"not a torch file")
    with pytest.raises(ControllerError, match="weights_only=True"):
        load_controller(str(tmp_path / "garbage.pt"))
    policy = PairPolicy(4, hidden=4)
    with pytest.raises(ControllerError, match="lr=0"):
        ReinforceLearner(policy, lr=0)
    with pytest.raises(ControllerError, match="baseline_decay=1.0"):
        ReinforceLearner(policy, baseline_decay=1.0)
    with pytest.raises(ControllerError, match="from no transitions"):
        ReinforceLearner(policy).update([[]])
    with pytest.raises(ControllerError, match=r"expected \(P, 4\)"):
        ReinforceLearner(policy).update([[Transition(torch.zeros(1, 3), torch.tensor([0]), 1.0)]])
    with pytest.raises(ControllerError, match="expected a PairPolicy"):
        save_controller(path, torch.nn.Linear(2, 2))
