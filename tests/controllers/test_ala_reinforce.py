"""REINFORCE learner: advantages and baseline by hand, the loss against a naive computation, a
bandit solved on-policy, controller files."""

import pytest
import torch

from fairseq_dynloss.controllers import (
    ControllerError, PairPolicy, ReinforceLearner, ReplayMemory, Transition, load_controller,
    save_controller,
)


def test_advantages_and_baseline_by_hand():
    learner = ReinforceLearner(PairPolicy(2, 4, seed=0), lr=0.1, baseline_decay=0.75)
    assert learner.advantages([1.0, -1.0]) == [1.0, -1.0]  # first window: b = its mean reward, 0
    assert learner.baseline == 0.0
    assert learner.advantages([1.0]) == [1.0]  # the baseline from before the reward
    assert learner.baseline == pytest.approx(0.25)
    assert learner.advantages([1.0]) == pytest.approx([0.75])
    assert learner.baseline == pytest.approx(0.75 * 0.25 + 0.25)


def test_per_element_advantages_and_baseline_by_hand():
    """Per-class credit: each element's baseline tracks its own reward."""
    learner = ReinforceLearner(PairPolicy(2, 4, seed=0), lr=0.1, baseline_decay=0.5)
    first = learner.advantages([torch.tensor([1.0, -1.0]), torch.tensor([1.0, 1.0])])
    assert [a.tolist() for a in first] == [[0.0, -1.0], [0.0, 1.0]]  # b = the children's mean [1, 0]
    (second,) = learner.advantages([torch.tensor([-1.0, 1.0])])
    assert second.tolist() == [-2.0, 1.0] and learner.baseline.tolist() == [0.0, 0.5]
    with pytest.raises(ControllerError, match="mix numbers and per-element tensors"):
        learner.advantages([1.0])
    restored = ReinforceLearner(PairPolicy(2, 4, seed=0), lr=0.1, baseline_decay=0.5)
    restored.load_state_dict(learner.state_dict())
    assert torch.equal(restored.baseline, learner.baseline)


def test_per_element_policy_gradient_equals_a_naive_computation():
    """loss = -mean_n mean_e A_ne log pi(a_ne|s_ne): each element weighted by its own advantage."""
    policy = PairPolicy(3, 4, seed=0)
    g = torch.Generator().manual_seed(1)
    batch = [Transition(torch.randn(4, 3, generator=g), torch.tensor([1, 0, -1, 1]), torch.ones(4),
                        advantage=torch.tensor([0.5, -1.0, 2.0, 0.0], dtype=torch.float64)),
             Transition(torch.randn(4, 3, generator=g), torch.tensor([0, 0, -1, 1]), torch.ones(4),
                        advantage=torch.tensor([1.0, 1.0, -0.5, 0.25], dtype=torch.float64))]
    naive = 0.0
    for t in batch:
        logp = torch.log_softmax(policy(t.state), -1)
        taken = logp[torch.arange(len(t.action)), t.action + 1]
        naive = naive - (t.advantage.float() * taken).mean() / 2
    stats = ReinforceLearner(policy, lr=1e-3).update(batch)
    assert stats["loss"] == pytest.approx(naive.item(), rel=1e-5)
    assert stats["mean_advantage"] == pytest.approx((0.375 + 0.4375) / 2)


def test_a_positive_advantage_makes_the_taken_action_more_likely():
    learner = ReinforceLearner(PairPolicy(2, 4, seed=0), lr=0.1)
    step = Transition(torch.zeros(1, 2), torch.tensor([1]), 1.0, advantage=1.0)
    stats = learner.update([step])
    assert stats["mean_advantage"] == 1.0 and stats["importance_ratio"] == 1.0
    assert learner.policy.log_prob(torch.zeros(1, 2), torch.tensor([1])).exp().item() > 1 / 3


def test_policy_gradient_equals_a_naive_computation():
    """loss = -mean_n A_n mean_e rho_ne log pi(a_ne|s_ne) - c H, rho truncated at clip."""
    policy = PairPolicy(3, 4, seed=0)
    g = torch.Generator().manual_seed(0)
    states = [torch.randn(4, 3, generator=g), torch.randn(2, 3, generator=g)]
    actions = [torch.tensor([1, 0, -1, 1]), torch.tensor([0, -1])]
    behaviour = torch.tensor([-0.5, -3.0])  # second transition replayed: ratio exp(logp + 3) > clip
    batch = [Transition(states[0], actions[0], 1.0, advantage=0.5),
             Transition(states[1], actions[1], -1.0, advantage=-2.0, behaviour=behaviour)]
    learner = ReinforceLearner(policy, lr=1e-3, entropy_bonus=0.1, clip=2.0)
    naive = 0.0
    entropies = []
    for t in batch:
        logp = torch.log_softmax(policy(t.state), -1)
        taken = logp[torch.arange(len(t.action)), t.action + 1]
        rho = torch.ones_like(taken) if t.behaviour is None else (taken.detach() - t.behaviour.float()).exp().clamp(max=2.0)
        naive = naive - t.advantage * (rho * taken).mean() / 2
        entropies.append(-(logp.exp() * logp).sum(-1).mean())
    naive = naive - 0.1 * torch.stack(entropies).mean()
    stats = learner.update(batch)
    assert stats["loss"] == pytest.approx(naive.item(), rel=1e-5)


def test_reinforce_solves_three_armed_bandit_on_policy():
    policy = PairPolicy(3, hidden=16, seed=0)
    learner = ReinforceLearner(policy, lr=0.05, baseline_decay=0.9)
    act_gen, env_gen = torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)
    win_prob = {-1: 0.2, 0: 0.5, 1: 0.8}  # arm +1 is optimal
    state = torch.ones(16, 3)  # 16 elements per step, one reward each: 16 children
    for _ in range(40):
        with torch.no_grad():
            actions, _ = policy.act(state, act_gen)
        rewards = [1.0 if torch.rand((), generator=env_gen).item() < win_prob[a] else -1.0 for a in actions.tolist()]
        batch = [Transition(state[k:k + 1], actions[k:k + 1], r) for k, r in enumerate(rewards)]
        for t, adv in zip(batch, learner.advantages(rewards)):
            t.advantage = adv
        learner.update(batch)
    assert policy.log_prob(state[:1], torch.tensor([1])).exp().item() > 0.9


def test_controller_file_round_trip(tmp_path):
    policy = PairPolicy(6, hidden=8, seed=0)
    learner = ReinforceLearner(policy, lr=0.01)
    memory = ReplayMemory(8, seed=0)
    for k in range(3):
        memory.add(torch.randn(5, 6, generator=torch.Generator().manual_seed(k)), torch.tensor([1, 0, -1, 1, 0]), 1.0)
        memory.transitions[-1].advantage = 0.5 - k
    learner.advantages([1.0])
    learner.update(memory.sample(2))
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
    learner.update(memory.sample(2))
    resumed.update(resumed_memory.sample(2))
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
        ReinforceLearner(policy).update([])
    with pytest.raises(ControllerError, match=r"expected \(P, 4\)"):
        ReinforceLearner(policy).update([Transition(torch.zeros(1, 3), torch.tensor([0]), 1.0, advantage=1.0)])
    with pytest.raises(ControllerError, match="without its advantage"):
        ReinforceLearner(policy).update([Transition(torch.zeros(1, 4), torch.tensor([0]), 1.0)])
    with pytest.raises(ControllerError, match="entropy_bonus=-1"):
        ReinforceLearner(policy, entropy_bonus=-1)
    with pytest.raises(ControllerError, match="expected a PairPolicy"):
        save_controller(path, torch.nn.Linear(2, 2))
