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
    with pytest.raises(ControllerError, match=r"logit_init=nan, logit_max=0.0; expected finite"):
        PairTarget(build_phi("bucketed", 4, num_buckets=2), history=0, form="prob", logit_init=float("nan"))


def bucketed_phi_4_2():
    """A bucketed Phi over 6 classes in buckets of sizes 4 and 2."""
    phi = build_phi("bucketed", 6, counts=[9, 8, 7, 6, 5, 4], num_buckets=2)
    phi.bucket_of.copy_(torch.tensor([0, 0, 0, 0, 1, 1]))
    phi.bucket_onehot.copy_(torch.nn.functional.one_hot(phi.bucket_of, 2).float())
    return phi


def test_bucketed_prob_target_moves_logits_of_b():
    """B = exp(L): hand values after clamped steps, the logit box by default, exact state_dict."""
    phi = bucketed_phi_4_2()
    phi.diag.fill_(0.7)  # d is not the target's: it stays
    target = PairTarget(phi, history=0, form="prob", logit_init=-4.0)  # box [-4, 0]
    assert target.num_elements == 4 and target.description == "bucketed:prob"
    torch.testing.assert_close(phi.B, torch.full((2, 2), math.exp(-4.0)))
    target.apply(torch.tensor([1, 0, -1, 1]), 1.5)  # -1 on L = -4 stays at -4 (the box)
    target.apply(torch.tensor([1, 0, 0, 1]), 1.5)
    logits = torch.tensor([[-1.0, -4.0], [-4.0, -1.0]], dtype=torch.float64)
    torch.testing.assert_close(target.values(), logits)
    torch.testing.assert_close(phi.B, torch.tensor([[math.exp(-1.0), math.exp(-4.0)], [math.exp(-4.0), math.exp(-1.0)]]))
    torch.testing.assert_close(phi.diag, torch.full((6,), 0.7))
    # the value feature: the change of L from the start over the box width
    state = torch.rand(2, 2) + 1.0
    torch.testing.assert_close(target.features(state, [], 0.5),
                               pair_features(state, logits + 4.0, [], 0.5, target.elements, value_scale=4.0))
    assert target.summary() == pytest.approx({"W_mean_abs": (2 * math.exp(-1.0) + 2 * math.exp(-4.0)) / 4,
                                              "W_min": math.exp(-4.0), "W_max": math.exp(-1.0)}, rel=1e-6)
    for _ in range(5):  # +1.5 from -1: at the box's top, B = 1
        target.apply(torch.tensor([1, 1, 1, 1]), 1.5)
    torch.testing.assert_close(phi.B, torch.ones(2, 2))
    # exact resume: the logits travel in the state dict, the future steps agree bit for bit
    other = bucketed_phi_4_2()
    restored = PairTarget(other, history=0, form="prob", logit_init=-4.0)
    target.apply(torch.tensor([-1, 0, -1, 1]), 0.3)
    restored.load_state_dict(target.state_dict())
    other.load_tensors({name: t.clone() for name, t in phi.tensors().items()})
    for t in (target, restored):
        t.apply(torch.tensor([-1, -1, 0, 1]), 0.7)
    assert torch.equal(restored.values(), target.values()) and torch.equal(other.B, phi.B)
    with pytest.raises(ControllerError, match=r"checkpoint logits have shape \(3, 3\); expected \(2, 2\)"):
        restored.load_state_dict({"logits": torch.zeros(3, 3)})


@pytest.mark.parametrize("sign", [-1, 1])
def test_bucketed_prob_b_stays_non_negative_after_extreme_actions(sign):
    """Even without the logit box (a clamp of +-1000 on L), B = exp(L) is >= 0 and finite
    (exp(-1009) underflows to 0, never below), and the prob form accepts it."""
    from fairseq_dynloss.losses import check_prob_tensors

    phi = bucketed_phi_4_2()
    target = PairTarget(phi, history=0, form="prob", clamp=(-1000.0, 0.0 if sign > 0 else 1000.0))
    for _ in range(40):
        target.apply(torch.full((4,), sign), 50.0)
        assert (phi.B >= 0).all() and torch.isfinite(phi.B).all()
    if sign > 0:  # this clamp allows no rise: L stays at -9.2; the default box stops at L = 0, B = 1
        torch.testing.assert_close(phi.B, torch.full((2, 2), math.exp(-9.2)))
        phi_top = bucketed_phi_4_2()
        top = PairTarget(phi_top, history=0, form="prob")
        for _ in range(40):
            top.apply(torch.ones(4, dtype=torch.long), 50.0)
        torch.testing.assert_close(phi_top.B, torch.ones(2, 2))
    else:  # L = -1009.2: exp underflows to exactly 0
        assert torch.equal(phi.B, torch.zeros(2, 2))
    check_prob_tensors(phi)  # finite, >= 0, every column sum > 0 (d = 1)


def test_bucketed_prob_loss_at_the_start_is_cross_entropy_within_exp_logit_init():
    """l = -log(p_y + e^L0 X), X = sum_g mean_{j in g} p_j (d = 1): by hand, and
    0 <= CE - l <= e^L0 X / p_y; for a near-uniform student that is about G e^L0."""
    from fairseq_dynloss.losses import dynamic_loss

    phi = bucketed_phi_4_2()
    PairTarget(phi, history=0, form="prob")  # logit_init = -9.2
    generator = torch.Generator().manual_seed(0)
    for spread in (0.1, 3.0):  # near-uniform and confident students
        lprobs = torch.log_softmax(spread * torch.randn(64, 6, generator=generator, dtype=torch.float64), -1)
        target = torch.randint(0, 6, (64,), generator=generator)
        out = dynamic_loss(lprobs, target, phi, form="prob", reduce=False)
        p = lprobs.exp()
        X = p[:, :4].mean(1) + p[:, 4:].mean(1)
        p_y = p.gather(1, target[:, None]).squeeze(1)
        small = math.exp(-9.2)
        torch.testing.assert_close(out.dynamic, -torch.log(p_y + small * X), rtol=1e-5, atol=1e-6)
        gap = -torch.log(p_y) - out.dynamic
        assert (gap >= -1e-6).all() and (gap <= small * X / p_y + 1e-6).all()
    uniform = torch.full((1, 6), -math.log(6.0), dtype=torch.float64)
    gap = math.log(6.0) - dynamic_loss(uniform, torch.tensor([0]), phi, form="prob", reduce=False).dynamic.item()
    assert gap == pytest.approx(math.log(1 + 2 * math.exp(-9.2)), rel=1e-3)  # G e^L0 = 2e-4 nats


def test_pair_target_refuses_a_phi_it_cannot_control():
    with pytest.raises(ControllerError, match="ALA cannot act on a 'diag_lowrank' Phi"):
        PairTarget(build_phi("diag_lowrank", 5, rank=2), history=0)
