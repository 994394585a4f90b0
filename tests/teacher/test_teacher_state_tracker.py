"""StudentStateTracker (the one definition of s_t), the skip of unrolls whose student diverges
(every unroll length), the controls' teachers, and gradient reaching the gates at init."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from fairseq_dynloss.hypergrad import SGD, hypergradient
from fairseq_dynloss.losses import build_phi, dynamic_loss
from fairseq_dynloss.teacher import (
    GatedTeacher, NonFiniteStateError, StudentStateTracker, TeacherLearner, build_teacher,
)
from fairseq_dynloss.trainer.l2t import UnrollState

C = 4


def test_tracker_features_by_hand():
    tracker = StudentStateTracker(horizon=10, peak_lr=0.5, num_classes=C)
    log_c = math.log(C)
    # before any update: progress 0, losses as a uniform prediction, no dev metric
    torch.testing.assert_close(tracker.features(0.5), torch.tensor([0.0, 1.0, 1.0, 0.0, 1.0, 1.0]))
    tracker.observe_train(2.0)
    tracker.observe_train(1.0)
    tracker.observe_dev(0.7, 0.6)
    tracker.observe_dev(float("nan"), None)  # ignored: keeps the last real values
    ema = 0.9 * 2.0 + 0.1 * 1.0
    expected = torch.tensor([0.2, ema / log_c, 0.7 / log_c, 0.6, 0.25 / 0.5, 1.0])
    torch.testing.assert_close(tracker.features(0.25), expected)
    copy = tracker.copy()
    copy.observe_train(5.0)
    assert tracker.num_updates == 2 and copy.num_updates == 3  # independent
    restored = StudentStateTracker(10, 0.5, C)
    restored.load_state_dict(tracker.state_dict())
    torch.testing.assert_close(restored.features(0.25), expected)


@pytest.mark.parametrize("horizon, peak", [(0, 1.0), (5, 0.0)])
def test_tracker_refuses_bad_settings(horizon, peak):
    with pytest.raises(ValueError, match="expected a positive"):
        StudentStateTracker(horizon, peak, C)


def test_a_diverged_student_has_no_features():
    tracker = StudentStateTracker(10, 1.0, C)
    tracker.observe_train(float("inf"))
    with pytest.raises(NonFiniteStateError, match="non-finite student state features"):
        tracker.features(1.0)


def _student_problem(diverge_at):
    """A linear softmax student; its training batch at step ``diverge_at`` holds an inf, so its NLL
    (and the train-loss feature of the steps after it) is not finite."""
    gen = torch.Generator().manual_seed(0)
    params = {"w": 0.1 * torch.randn(3, C, generator=gen)}
    batches = []
    for t in range(6):
        x = torch.randn(8, 3, generator=gen)
        if t == diverge_at:
            x[0, 0] = float("inf")
        batches.append((t, x, torch.randint(0, C, (8,), generator=gen)))
    x_dev, y_dev = torch.randn(16, 3, generator=gen), torch.randint(0, C, (16,), generator=gen)
    return params, batches, (x_dev, y_dev)


@pytest.mark.parametrize("unroll", [1, 2, 3, 6])
@pytest.mark.parametrize("checkpoint_every", [None, 1])
def test_a_divergent_unroll_is_skipped_not_aborted(unroll, checkpoint_every):
    """The student diverges at its last unrolled step (T = 1: its only one): the features of the
    next step would be non-finite, or the dev objective is; either way the teacher step is skipped
    and theta is unchanged, for every unroll length and memory policy."""
    params, batches, (x_dev, y_dev) = _student_problem(diverge_at=unroll - 1)
    teacher = GatedTeacher("full", C, seed=0)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    learner = TeacherLearner(teacher, lr=0.1, optimizer=SGD(lr=0.5), checkpoint_every=checkpoint_every)
    phi = build_phi("full", C)
    state = UnrollState(StudentStateTracker(10, 1.0, C), lambda update: 0, [1.0] * unroll, None)

    def student_loss(p, phi_tensors, batch):
        step, x, y = batch
        lprobs = F.log_softmax(x @ p["w"], dim=1)
        state.observe(step, lprobs, y)
        return dynamic_loss(lprobs, y, phi, phi_tensors=phi_tensors).loss / len(y)

    result = learner.step(student_loss, lambda p: -F.cross_entropy(x_dev @ p["w"], y_dev), params,
                          batches[:unroll], state)
    assert result.skipped and math.isnan(result.grad_norm)
    for k, v in teacher.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_precomputed_non_finite_features_are_skipped():
    params, batches, (x_dev, y_dev) = _student_problem(diverge_at=99)
    teacher = GatedTeacher("full", C, seed=0)
    learner = TeacherLearner(teacher, lr=0.1, optimizer=SGD(lr=0.5))
    phi = build_phi("full", C)
    features = torch.ones(2, 6)
    features[1, 1] = float("nan")

    def student_loss(p, phi_tensors, batch):
        _, x, y = batch
        return dynamic_loss(F.log_softmax(x @ p["w"], dim=1), y, phi, phi_tensors=phi_tensors).loss / len(y)

    result = learner.step(student_loss, lambda p: -F.cross_entropy(x_dev @ p["w"], y_dev), params, batches[:2],
                          features)
    assert result.skipped


@pytest.mark.parametrize("form", ["paper", "prob"])
def test_gates_get_gradient_at_init(form):
    """No saddle at init (the authors' demo starts at one): the hypergradient of every gate
    parameter of an untrained teacher is non-zero."""
    params, batches, (x_dev, y_dev) = _student_problem(diverge_at=99)
    teacher = GatedTeacher("full", C, seed=0, form=form)
    phi = build_phi("full", C)
    features = torch.tensor([0.3, 0.8, 0.8, 0.2, 1.0, 1.0])
    theta = {k: v.detach() for k, v in teacher.named_parameters()}

    def inner(p, h, batch, step):
        _, x, y = batch
        phi_t = functional_call(teacher, h, (features,))
        return dynamic_loss(F.log_softmax(x @ p["w"], dim=1), y, phi, phi_tensors=phi_t, form=form).loss / len(y)

    result = hypergradient(inner, lambda p: F.cross_entropy(x_dev @ p["w"], y_dev), params, theta, batches[:3],
                           optimizer=SGD(lr=0.5))
    for name, grad in result.grads.items():
        if name.startswith("gates."):
            assert grad.abs().max() > 0, name


def test_prob_teacher_starts_near_the_identity_and_stays_non_negative():
    teacher = GatedTeacher("full", C, seed=0, form="prob")
    features = torch.tensor([0.3, 0.8, 0.8, 0.2, 1.0, 1.0])
    # about cross-entropy at init: the mixing weights are 0 up to the small random components
    torch.testing.assert_close(teacher(features)["matrix"], torch.eye(C), rtol=0, atol=0.01)
    with torch.no_grad():
        for p in teacher.parameters():
            p.add_(torch.randn_like(p))
    matrix = teacher(features)["matrix"]
    assert (matrix >= 0).all()
    torch.testing.assert_close(matrix.sum(1), torch.ones(C))


def test_fixed_diagonal_pins_phi_diagonal_to_one():
    for kind in ("gated", "bilinear"):
        teacher = build_teacher(kind, "full", C, seed=0, fixed_diagonal=True)
        with torch.no_grad():
            for p in teacher.parameters():
                p.add_(torch.randn_like(p))
        matrix = teacher(torch.rand(6))["matrix"]
        torch.testing.assert_close(matrix.diagonal(), torch.ones(C))
        assert (matrix - torch.diag(matrix.diagonal())).abs().max() > 0


def test_lr_scale_teacher_is_the_identity_and_a_multiplier():
    teacher = build_teacher("lr_scale", "full", C)
    assert torch.equal(teacher(torch.rand(6))["matrix"], torch.eye(C))
    assert float(teacher.lr_multiplier()) == 1.0
    assert [n for n, p in teacher.named_parameters() if p.requires_grad] == ["log_lr_scale"]
