"""ALA targets: metric-learning distance state by hand, element features, Phi updates of both
targets against the building blocks they compose."""

import math

import pytest
import torch

from fairseq_dynloss.controllers import (
    ControllerError, ElementTarget, PairTarget, confusion_state, distance_statistics,
    element_feature_size, element_features, pair_distances, pair_features,
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
    assert target.num_elements == 6 and target.feature_size == 6
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0], [0.5, 0.5, 3.0], [1.0, 2.0, 0.0]])
    labels = torch.tensor([0, 1, 2, 1])
    state = target.state(logits, labels)
    torch.testing.assert_close(state, confusion_state(torch.log_softmax(logits, 1), labels, 3))
    torch.testing.assert_close(target.features(state, [state], 0.5),
                               pair_features(state, phi.matrix.detach(), [state], 0.5))
    target.apply(torch.tensor([1, 1, -1, 0, 0, 0]), 1.0)  # pairs (0,1), (0,2), (1,0): clamped to +-0.5
    expected = torch.eye(3)
    expected[0, 1], expected[0, 2], expected[1, 0] = 0.5, 0.5, -0.5
    torch.testing.assert_close(phi.matrix.detach(), expected)
    assert target.summary()["phi_offdiag_mean_abs"] == pytest.approx(1.5 / 6)


def test_pair_target_refuses_a_phi_it_cannot_control():
    with pytest.raises(ControllerError, match="ALA cannot act on a 'diag_lowrank' Phi"):
        PairTarget(build_phi("diag_lowrank", 5, rank=2), history=0)
