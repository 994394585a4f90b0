"""TeacherLearner under data parallelism: the hypergradient is averaged by ``reduce_grads``, and a
non-finite hypergradient on any rank makes every rank skip the step together (a rank that
returned early would leave the others waiting in the all-reduce)."""

import math

import torch
import torch.nn.functional as F

from fairseq_dynloss.losses import build_phi, dynamic_loss
from fairseq_dynloss.teacher.learner import TeacherLearner
from fairseq_dynloss.teacher.models import build_teacher
from fairseq_dynloss.teacher.state import STATE_FEATURES

T, C = 2, 3


def problem(dev_scale=1.0):
    generator = torch.Generator().manual_seed(0)
    phi = build_phi("full", C)
    batches = [(torch.randn(8, 2, generator=generator), torch.randint(0, C, (8,), generator=generator))
               for _ in range(T)]
    dev_x, dev_y = torch.randn(16, 2, generator=generator), torch.randint(0, C, (16,), generator=generator)

    def student_loss(params, phi_tensors, batch):
        x, y = batch
        lprobs = F.log_softmax(x @ params["w"].t(), dim=-1)
        return dynamic_loss(lprobs, y, phi, phi_tensors=phi_tensors).loss / y.numel()

    def dev_objective(params):
        probs = F.softmax(dev_x @ params["w"].t(), dim=-1)
        return probs.gather(1, dev_y[:, None]).mean() * dev_scale

    params = {"w": torch.randn(C, 2, generator=generator)}
    return student_loss, dev_objective, params, batches, torch.zeros(T, len(STATE_FEATURES))


def learner(reduce_grads=None):
    teacher = build_teacher("gated", "full", C, seed=0)
    return TeacherLearner(teacher, lr=0.01, clip_norm=0.0, reduce_grads=reduce_grads)


def parameters(model):
    return [p.detach().clone() for p in model.parameters()]


def test_reduce_grads_sees_the_hypergradient_and_the_step_uses_its_result():
    seen = []

    def halve(grads):  # stands in for the all-reduce mean with another rank of zero gradient
        seen.append([g.clone() for g in grads])
        for g in grads:
            g.mul_(0.5)

    plain, reduced = learner(), learner(halve)
    result_plain = plain.step(*problem())
    result_reduced = reduced.step(*problem())
    assert not result_reduced.skipped and len(seen) == 1
    assert math.isclose(result_reduced.grad_norm, result_plain.grad_norm * 0.5, rel_tol=1e-6)
    for plain_p, reduced_p in zip(plain.teacher.parameters(), reduced.teacher.parameters()):
        assert torch.allclose(reduced_p.grad, plain_p.grad * 0.5, rtol=1e-6, atol=1e-12)


def test_non_finite_rank_still_joins_the_reduce_and_all_ranks_skip():
    calls = []

    def record(grads):
        calls.append(all(torch.isnan(g).all() for g in grads))

    bad = learner(record)
    before = parameters(bad.teacher)
    result = bad.step(*problem(dev_scale=float("nan")))
    assert calls == [True]  # joined the collective, with NaNs
    assert result.skipped and math.isnan(result.grad_norm)
    assert all(torch.equal(a, b) for a, b in zip(before, parameters(bad.teacher)))


def test_finite_rank_skips_when_another_rank_was_not_finite():
    def poison(grads):  # the all-reduce mean with a rank that sent NaNs
        for g in grads:
            g.fill_(float("nan"))

    good = learner(poison)
    before = parameters(good.teacher)
    result = good.step(*problem())
    assert result.skipped and math.isnan(result.grad_norm)
    assert all(torch.equal(a, b) for a, b in zip(before, parameters(good.teacher)))


def test_single_process_non_finite_skips_without_reducing():
    single = learner()
    before = parameters(single.teacher)
    result = single.step(*problem(dev_scale=float("nan")))
    assert result.skipped
    assert all(torch.equal(a, b) for a, b in zip(before, parameters(single.teacher)))
