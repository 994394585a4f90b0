"""translation_l2t and --phi-source teacher with --dynamic-form prob: the teacher's Phi is
non-negative by construction (teacher/prob_tensors.py) for full, diag_lowrank and bucketed Phi;
at init it is the prob-form value nearest the identity, (1 - m0) I + m0 (spread), m0 = sigmoid(-5)
= 0.0067, whose loss is within -log(1 - m0) = 0.0067 nats of cross-entropy per token; the gates get
gradient at init; deployment computes the same Phi as training for the same student state."""

import math

import pytest
import torch
import torch.nn.functional as F

from fairseq.logging import metrics
from fairseq_dynloss.criterions.dynamic_loss import DynamicLossCriterion
from fairseq_dynloss.losses import PhiError, build_phi, dynamic_loss
from fairseq_dynloss.teacher import build_teacher, save_teacher
from l2t_hypergrad import l2t_hypergradient
from l2t_task_setup import build, parse, train_batches

C, R, G = 12, 3, 4
M0 = 1 / (1 + math.exp(5))  # sigmoid(-5)
FEATURES = torch.tensor([0.3, 0.8, 0.8, 0.2, 1.0, 1.0])
CPU = torch.device("cpu")


def phi_of(parametrisation, counts=None):
    return build_phi(parametrisation, C, rank=R, num_buckets=G, counts=counts)


@pytest.mark.parametrize("parametrisation", ["full", "diag_lowrank", "bucketed"])
def test_init_is_the_nearest_prob_form_identity(parametrisation):
    teacher = build_teacher("gated", parametrisation, C, rank=R, num_buckets=G, form="prob", init_std=0.0)
    tensors = teacher(FEATURES)
    expected = {
        "full": {"matrix": (1 - M0) * torch.eye(C) + M0 / C},
        "diag_lowrank": {"diag": torch.full((C,), 1 - M0), "U": torch.full((C, R), M0 / R),
                         "V": torch.full((C, R), 1 / C)},
        "bucketed": {"diag": torch.full((C,), 1 - M0), "B": torch.full((G, G), M0 / G)},
    }[parametrisation]
    assert tensors.keys() == expected.keys()
    for name, value in expected.items():
        torch.testing.assert_close(tensors[name], value, rtol=1e-6, atol=1e-7)
    # The loss by hand: label y gets (1 - m0) p_y plus m0 times the mean probability (full,
    # diag_lowrank: over all classes; bucketed: the mean over buckets of each bucket's mean).
    counts = [50 - i for i in range(C)]
    phi = phi_of(parametrisation, counts)
    gen = torch.Generator().manual_seed(0)
    lprobs = torch.log_softmax(3 * torch.randn(20, C, generator=gen, dtype=torch.float64), -1)
    target = torch.randint(0, C, (20,), generator=gen)
    loss = dynamic_loss(lprobs, target, phi.double(), form="prob", reduce=False,
                        phi_tensors={k: v.double() for k, v in tensors.items()}).loss
    p = lprobs.exp()
    if parametrisation == "bucketed":
        spread = torch.stack([p[:, phi.bucket_of == g].mean(1) for g in range(G)]).mean(0)
    else:
        spread = p.mean(1)
    by_hand = -torch.log((1 - M0) * p[torch.arange(20), target] + M0 * spread)
    torch.testing.assert_close(loss, by_hand, rtol=1e-5, atol=0)  # the teacher computes in float32
    ce = F.nll_loss(lprobs, target, reduction="none")
    assert (loss <= ce - math.log(1 - M0) + 1e-12).all()


@pytest.mark.parametrize("parametrisation", ["full", "diag_lowrank", "bucketed"])
def test_phi_stays_non_negative_wherever_theta_goes(parametrisation):
    teacher = build_teacher("gated", parametrisation, C, rank=R, num_buckets=G, form="prob", seed=3)
    with torch.no_grad():
        for p in teacher.parameters():
            p.add_(3 * torch.randn_like(p))
    tensors = teacher(FEATURES)
    assert all((t >= 0).all() for t in tensors.values())
    phi = phi_of(parametrisation)
    phi.load_tensors(tensors, form="prob")  # the prob form's own check
    if parametrisation != "bucketed":  # rows of a noise matrix
        torch.testing.assert_close(phi.materialize().sum(1), torch.ones(C))


def test_bilinear_prob_teacher_is_refused():
    with pytest.raises(PhiError, match="bilinear teacher outputs a paper-form Phi only"):
        build_teacher("bilinear", "bucketed", C, num_buckets=G, form="prob")


PROB = ("--dynamic-form", "prob")
OPTIONS = {"bucketed": ("--phi-parametrisation", "bucketed", "--phi-buckets", "4"),
           "diag_lowrank": ("--phi-parametrisation", "diag_lowrank", "--phi-rank", "4")}


@pytest.mark.parametrize("parametrisation", ["bucketed", "diag_lowrank"])
def test_gates_get_gradient_at_init(toy_data_bin, parametrisation):
    task, model, criterion, _ = build(toy_data_bin / "data-bin", *OPTIONS[parametrisation], *PROB)
    assert criterion.form == "prob" and task.learner.teacher.config["form"] == "prob"
    features = torch.tensor([[0.0, 1.0, 1.0, 0.0, 1.0, 1.0], [0.3, 0.9, 0.9, 0.1, 1.0, 1.0]])
    model.train()
    result = l2t_hypergradient(task, model, train_batches(task, 2), features, lr=0.1)
    assert result.finite
    for name, grad in result.grads.items():
        if name.startswith("gates.") or name.startswith("components.mix"):
            assert grad.abs().max() > 0, name


@pytest.mark.parametrize("parametrisation", ["bucketed", "diag_lowrank"])
def test_deployment_computes_the_training_phi(toy_data_bin, tmp_path, parametrisation):
    data = toy_data_bin / "data-bin"
    task, model, criterion, _ = build(data, *OPTIONS[parametrisation], *PROB, "--teacher-seed", "4")
    teacher = task.learner.teacher
    with torch.no_grad():  # a teacher away from its init, so that the state matters
        for p in teacher.parameters():
            p.add_(torch.randn_like(p))
    for nll in (5.0, 4.2, 3.9):
        task.tracker.observe_train(nll)
    task.tracker.observe_dev(3.5, 0.25)
    with metrics.aggregate():
        metrics.log_scalar("lr", 0.0015)
        metrics.log_scalar("num_updates", 3)
        task._set_phi(3, CPU)
        trained = {k: v.clone() for k, v in criterion.phi.tensors().items()}
        save_teacher(teacher, str(tmp_path / "teacher.pt"), horizon=int(task.horizon))
        # the deployed criterion: --phi-source teacher, the same student state
        cfg = parse(data, *OPTIONS[parametrisation], *PROB, "--phi-source", "teacher",
                    "--teacher-path", tmp_path / "teacher.pt")
        deployed = DynamicLossCriterion(task, cfg.criterion)
        deployed.tracker.load_state_dict(task.tracker.state_dict())
        deployed.tracker.num_updates = 0  # the criterion reads t from fairseq's num_updates meter
        vocab = len(task.tgt_dict)
        torch.testing.assert_close(deployed.student_state().features(vocab), task.student_state(3).features(vocab))
        deployed._teach(True, 0.0, 0.0, 1, CPU)  # sets Phi_t, then records this update's NLL
    for name, value in trained.items():
        torch.testing.assert_close(deployed.phi.tensors()[name], value, rtol=0, atol=0)
    assert any((value - phi_of_identity).abs().max() > 1e-3 for value, phi_of_identity in
               zip(trained.values(), build_phi(parametrisation, len(task.tgt_dict), rank=4,
                                               num_buckets=4).tensors().values()))


def test_a_teacher_of_the_other_form_is_refused(toy_data_bin, tmp_path):
    data = toy_data_bin / "data-bin"
    task, _, _, _ = build(data, *OPTIONS["bucketed"])  # a paper-form run
    save_teacher(task.learner.teacher, str(tmp_path / "paper.pt"), horizon=100)
    cfg = parse(data, *OPTIONS["bucketed"], *PROB, "--phi-source", "teacher", "--teacher-path", tmp_path / "paper.pt")
    with pytest.raises(PhiError, match="was built for the loss form 'paper'; this student uses form 'prob'"):
        DynamicLossCriterion(task, cfg.criterion)
    with pytest.raises(PhiError, match="was built for the loss form 'paper'; this student uses form 'prob'"):
        build(data, *OPTIONS["bucketed"], *PROB, "--teacher-init", tmp_path / "paper.pt")
