"""ALA targets: metric-learning distance state by hand, element features, Phi updates of both
targets against the building blocks they compose."""

import math

import pytest
import torch

from fairseq_dynloss.controllers import (
    ControllerError, ElementTarget, PairTarget, confusion_state, distance_statistics,
    element_feature_size, element_features, pair_distances, pair_feature_size, pair_features,
)
from fairseq_dynloss.losses import build_phi


def test_pair_distances_by_hand():
    e = torch.tensor([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0]])
    positive, negative = pair_distances(e, torch.tensor([0, 0, 1]))
    torch.testing.assert_close(positive, torch.tensor([5.0]))
    torch.testing.assert_close(negative, torch.tensor([1.0, math.sqrt(18.0)]))
    with pytest.raises(ControllerError, match=r"embeddings have shape \(3,\); expected \(N, D\)"):
        pair_distances(torch.zeros(3), torch.zeros(3))
    with pytest.raises(ControllerError, match=r"labels have shape \(2,\); expected \(3,\)"):
        pair_distances(e, torch.zeros(2))


def test_element_target_state_features_and_clamped_steps():
    values = torch.tensor([1.0, 0.0, 0.0])
    target = ElementTarget(values, ["a", "b", "c"], (0.0, 1.5), history=2)
    assert target.feature_size == element_feature_size(2, 3) == 10 * 3 + 2 + 3
    e = torch.tensor([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0], [1.0, 1.0]])
    labels = torch.tensor([0, 0, 1, 1])
    state = target.state(e, labels)
    torch.testing.assert_close(state, distance_statistics(*pair_distances(e, labels)))
    feats = target.features(state, [state, state], 0.25)
    torch.testing.assert_close(feats, element_features(state, values, 0.25, [state, state]))
    assert feats.shape == (3, target.feature_size)
    target.apply(torch.tensor([1, -1, 1]), 0.75)  # 1.75 is clamped to 1.5, -0.75 to 0
    torch.testing.assert_close(values, torch.tensor([1.5, 0.0, 0.75]))  # in place
    assert target.summary() == {"phi_a": 1.5, "phi_b": 0.0, "phi_c": 0.75}
    with pytest.raises(ControllerError, match=r"shape \(3,\); expected \(2,\), one per name"):
        ElementTarget(values, ["a", "b"], (0.0, 1.0), history=0)


def test_pair_target_composes_confusion_state_and_pair_features():
    phi = build_phi("full", 3)
    target = PairTarget(phi, history=1, clamp=(-0.5, 0.5))
    assert target.num_elements == 6 and target.feature_size == pair_feature_size(1)
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0], [0.5, 0.5, 3.0], [1.0, 2.0, 0.0]])
    labels = torch.tensor([0, 1, 2, 1])
    state = target.state(logits, labels)
    torch.testing.assert_close(state, confusion_state(torch.log_softmax(logits, 1), labels, 3))
    target.apply(torch.tensor([1, 1, -1, 0, 0, 0]), 1.0)  # pairs (0,1), (0,2), (1,0): clamped to +-0.5
    expected = torch.eye(3)
    expected[0, 1], expected[0, 2], expected[1, 0] = 0.5, 0.5, -0.5
    torch.testing.assert_close(phi.matrix.detach(), expected)
    # the value feature is the change from the start over the clamp scale
    torch.testing.assert_close(target.features(state, [state], 0.5),
                               pair_features(state, (expected - torch.eye(3)).double(), [state], 0.5,
                                             value_scale=0.5))
    assert target.summary()["phi_offdiag_mean_abs"] == pytest.approx(1.5 / 6)


def test_diagonal_control_clamps_around_the_identity():
    phi = build_phi("full", 2)
    target = PairTarget(phi, history=0, clamp=(-0.1, 0.1), diagonal=True)
    assert target.elements.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]
    target.apply(torch.tensor([1, 1, -1, -1]), 0.3)
    torch.testing.assert_close(phi.matrix, torch.tensor([[1.1, 0.1], [-0.1, 0.9]]))
    assert target.summary() == pytest.approx({"phi_offdiag_mean_abs": 0.1, "phi_diag_mean": 1.0})


def test_bucketed_target_moves_the_per_bucket_mean_weight():
    """W[g, h] = |h| B[g, h]: a step of beta on W changes B by beta / |h|."""
    phi = build_phi("bucketed", 6, counts=[9, 8, 7, 6, 5, 4], num_buckets=2)  # buckets of 3 and 3
    phi.bucket_of.copy_(torch.tensor([0, 0, 0, 0, 1, 1]))  # sizes 4 and 2
    target = PairTarget(phi, history=0, clamp=(-1.0, 1.0))
    assert target.sizes.tolist() == [4.0, 2.0] and target.num_elements == 4
    target.apply(torch.tensor([1, 1, -1, 0]), 0.4)
    torch.testing.assert_close(phi.B, torch.tensor([[0.1, 0.2], [-0.1, 0.0]]))
    torch.testing.assert_close(target.values(), torch.tensor([[0.4, 0.4], [-0.4, 0.0]], dtype=torch.float64))
    with pytest.raises(ControllerError, match="diagonal control applies to a full Phi"):
        PairTarget(phi, history=0, diagonal=True)


def test_prob_form_moves_logits_and_keeps_phi_non_negative():
    from fairseq_dynloss.losses.prob_form import phi_from_logits

    phi = build_phi("full", 3)
    target = PairTarget(phi, history=0, form="prob", logit_init=-4.0, clamp=(0.0, 4.0))
    start = phi.matrix.clone()
    torch.testing.assert_close(start, phi_from_logits(torch.full((3, 3), -4.0).fill_diagonal_(0.0), torch.tensor(1.0)))
    for _ in range(10):  # +2 per step on (0, 1): clamped at L = 0 (Phi_01 = Phi_00); -2 on (1, 0): at -4
        target.apply(torch.tensor([1, 0, -1, 0, 0, 0]), 2.0)
    logits = target.values()
    assert logits[0, 1] == 0.0 and logits[1, 0] == -4.0 and logits[0, 2] == -4.0
    assert (phi.matrix >= 0).all() and phi.matrix[0, 1] == pytest.approx(phi.matrix[0, 0].item())
    # Phi is phi_from_logits(L, 1) bit for bit (the target writes the row softmax directly)
    assert torch.equal(phi.matrix, phi_from_logits(logits, torch.tensor(1.0, dtype=torch.float64)).float())
    torch.testing.assert_close(phi.matrix.sum(1), torch.ones(3))
    restored = PairTarget(build_phi("full", 3), history=0, form="prob", logit_init=-4.0, clamp=(0.0, 4.0))
    restored.load_state_dict(target.state_dict())
    torch.testing.assert_close(restored.values(), logits)
    default = PairTarget(build_phi("full", 3), history=0, form="prob", logit_max=-2.0)
    for _ in range(10):
        default.apply(torch.ones(6, dtype=torch.long), 2.0)
    assert default.values()[~torch.eye(3, dtype=torch.bool)].max().item() == pytest.approx(-2.0)  # L_ij <= -2
    with pytest.raises(ControllerError, match="logit_init < logit_max <= 0"):
        PairTarget(build_phi("full", 3), history=0, form="prob", logit_max=0.5)
    with pytest.raises(ControllerError, match="bucketed Phi is controlled under form=paper only"):
        PairTarget(build_phi("bucketed", 4, num_buckets=2), history=0, form="prob")


def test_pair_target_refuses_a_phi_it_cannot_control():
    with pytest.raises(ControllerError, match="ALA cannot act on a 'diag_lowrank' Phi"):
        PairTarget(build_phi("diag_lowrank", 5, rank=2), history=0)
