"""ALA policy: beta scaling, sampling, and Phi updates that follow the sampled actions."""

import math

import pytest
import torch

from fairseq_dynloss.controllers import (
    ControllerError, PairPolicy, apply_actions, beta_for, confusion_state, controlled_pairs,
    controlled_tensor, pair_features,
)
from fairseq_dynloss.losses import BucketedPhi, FullPhi, build_phi


def test_beta_scaling_rule():
    assert beta_for(1, 0.1) == pytest.approx(0.1)
    assert beta_for(100, 0.5) == pytest.approx(0.05)
    assert beta_for(4950, 0.1) == pytest.approx(0.1 / math.sqrt(4950))
    for bad in (0, -0.1, float("nan"), float("inf"), True, "0.1"):
        with pytest.raises(ControllerError, match="beta=.*expected a finite step size > 0"):
            beta_for(10, bad)
    with pytest.raises(ControllerError, match="num_elements=0"):
        beta_for(0, 0.1)


def test_policy_starts_uniform_and_samples_deterministically():
    policy = PairPolicy(6, hidden=8, seed=0)
    feats = torch.randn(50, 6, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(torch.log_softmax(policy(feats), -1), torch.full((50, 3), -math.log(3)))
    a1, lp1 = policy.act(feats, torch.Generator().manual_seed(5))
    a2, lp2 = policy.act(feats, torch.Generator().manual_seed(5))
    assert torch.equal(a1, a2) and set(a1.tolist()) == {-1, 0, 1} and a1.dtype == torch.long
    torch.testing.assert_close(lp1, policy.log_prob(feats, a1))
    assert lp1.requires_grad
    greedy, _ = policy.act(feats, greedy=True)
    assert greedy.shape == (50,)
    assert torch.equal(PairPolicy(6, 8, seed=0).net[0].weight, policy.net[0].weight)
    with pytest.raises(ControllerError, match=r"expected \(P, 6\)"):
        policy(torch.zeros(3, 5))
    with pytest.raises(ControllerError, match="non-finite"):
        policy(torch.full((1, 6), float("nan")))
    with pytest.raises(ControllerError, match="values in"):
        policy.log_prob(feats[:1], torch.tensor([2]))


def test_sampling_follows_the_policy_probabilities():
    policy = PairPolicy(2, hidden=4, seed=0)
    with torch.no_grad():
        policy.net[-1].bias.copy_(torch.tensor([0.0, math.log(2.0), math.log(7.0)]))  # probs .1 .2 .7
    actions, _ = policy.act(torch.zeros(20000, 2), torch.Generator().manual_seed(0))
    freq = torch.stack([(actions == a).float().mean() for a in (-1, 0, 1)])
    torch.testing.assert_close(freq, torch.tensor([0.1, 0.2, 0.7]), atol=0.015, rtol=0)


def test_apply_actions_full_phi_by_hand():
    phi = FullPhi(3)
    pairs = torch.tensor([[0, 1], [1, 0], [2, 0]])
    values = apply_actions(phi, pairs, torch.tensor([1, -1, 0]), beta=0.5)
    expected = torch.eye(3)
    expected[0, 1], expected[1, 0] = 0.5, -0.5
    torch.testing.assert_close(phi.matrix, expected)
    torch.testing.assert_close(values, torch.tensor([0.5, -0.5, 0.0]))
    apply_actions(phi, pairs, torch.tensor([1, -1, 1]), beta=0.5, clamp=(-0.25, 0.75))
    expected[0, 1], expected[1, 0], expected[2, 0] = 0.75, -0.25, 0.5
    torch.testing.assert_close(phi.matrix, expected)


def test_apply_actions_bucketed_phi_by_hand():
    phi = BucketedPhi(4, torch.tensor([0, 0, 1, 1]))
    apply_actions(phi, torch.tensor([[0, 1], [1, 1]]), torch.tensor([1, -1]), beta=0.3)
    torch.testing.assert_close(phi.B, torch.tensor([[0.0, 0.3], [0.0, -0.3]]))
    dense = phi.materialize()
    assert dense[0, 2].item() == pytest.approx(0.3)  # class 0 (bucket 0) -> class 2 (bucket 1)
    assert dense[2, 3].item() == pytest.approx(-0.3)  # within bucket 1
    assert dense[2, 2].item() == pytest.approx(0.7)   # B[1, 1] also reaches the diagonal
    apply_actions(phi, torch.tensor([[1, 0]]), torch.tensor([-1]), beta=0.3, clamp=(-0.1, 0.1))
    assert phi.B[1, 0].item() == pytest.approx(-0.1)


def test_apply_actions_tensor_and_errors_change_nothing():
    weights = torch.tensor([1.0, 2.0])
    apply_actions(weights, torch.tensor([1]), torch.tensor([-1]), beta=0.5)
    assert weights.tolist() == [1.0, 1.5]
    phi = FullPhi(3)
    before = phi.matrix.clone()
    pairs = torch.tensor([[0, 1], [1, 2]])
    cases = [
        (dict(pairs=torch.tensor([[0, 0]]), actions=torch.tensor([1])), r"diagonal entries"),
        (dict(pairs=torch.tensor([[0, 1], [0, 1]]), actions=torch.tensor([1, 1])), "duplicate"),
        (dict(pairs=pairs, actions=torch.tensor([1, 2])), "values in"),
        (dict(pairs=pairs, actions=torch.tensor([1])), "2 elements"),
        (dict(pairs=torch.tensor([[0, 3]]), actions=torch.tensor([1])), r"expected \[0, 3\)"),
        (dict(pairs=pairs, actions=torch.tensor([1, 1]), beta=0.0), "beta=0.0"),
        (dict(pairs=pairs, actions=torch.tensor([1, 1]), beta=-1.0), "beta=-1.0"),
        (dict(pairs=pairs, actions=torch.tensor([1, 1]), clamp=(1.0, 0.0)), "low <= high"),
    ]
    for kwargs, message in cases:
        kwargs.setdefault("beta", 0.1)
        with pytest.raises(ControllerError, match=message):
            apply_actions(phi, **kwargs)
        assert torch.equal(phi.matrix, before)
    with pytest.raises(ControllerError, match="'diag_lowrank' Phi"):
        controlled_tensor(build_phi("diag_lowrank", 3, rank=1))


def test_one_controller_step_moves_phi_by_the_sampled_actions():
    """confusion state -> features -> actions -> Phi, end to end on a 4-class problem."""
    gen = torch.Generator().manual_seed(0)
    lprobs = torch.log_softmax(torch.randn(40, 4, generator=gen), -1)
    target = torch.arange(40) % 4
    phi = FullPhi(4)
    C = confusion_state(lprobs, target, 4)
    pairs = controlled_pairs(4)
    feats = pair_features(C, controlled_tensor(phi), [C], progress=0.1, pairs=pairs)
    policy = PairPolicy(feats.shape[1], seed=0)
    with torch.no_grad():
        actions, _ = policy.act(feats, gen)
    beta = beta_for(len(pairs), 0.5)
    before = phi.matrix.clone()
    apply_actions(phi, pairs, actions, beta)
    delta = phi.matrix - before
    torch.testing.assert_close(delta[pairs[:, 0], pairs[:, 1]], beta * actions.float())
    assert torch.equal(delta.diagonal(), torch.zeros(4))


def test_confusion_prior_raises_phi_on_pairs_confused_more_than_usual():
    """Pairs whose class-i examples put much probability on j (low C_ij, z(log C_ij) < 0) get
    "+", the rest "-": checked on a realistic state against the features' own z column."""
    from fairseq_dynloss.controllers import prior_policy

    g = torch.Generator().manual_seed(3)
    C = torch.exp(math.log(2) + (math.log(25) - math.log(2)) * torch.rand(10, 10, generator=g))
    C.diagonal().copy_(0.05)
    C[torch.arange(10), (torch.arange(10) + 1) % 10] = 0.9  # i -> i+1 confused, as under pair-flip noise
    pairs = controlled_pairs(10)
    features = pair_features(C, torch.zeros(10, 10), [C, C], 0.5, pairs)
    policy = prior_policy(features.shape[1], hidden=32, prior="confusion")
    probs = torch.softmax(policy(features), -1).detach()
    z = features[:, 0]
    assert bool((probs[z < -0.5, 2] > 0.999).all()) and bool((probs[z > 0.5, 0] > 0.999).all())
    flipped = pairs[:, 1] == (pairs[:, 0] + 1) % 10
    assert bool((probs[flipped, 2] > 0.999).all())
    uniform = prior_policy(features.shape[1], prior="none", seed=0)
    assert torch.allclose(torch.softmax(uniform(features), -1), torch.full((90, 3), 1 / 3))
    with pytest.raises(ControllerError, match="policy prior 'noise'; expected one of"):
        prior_policy(features.shape[1], prior="noise")
