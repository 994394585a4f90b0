"""The hypergradient of a translation_l2t teacher step, assembled from the task's own pieces as
``TeacherLearner.step`` does (one stream), with theta given explicitly (for finite differences)."""

import torch
from torch.func import functional_call

from fairseq_dynloss.hypergrad import SGD, FunctionalModule, hypergradient


def l2t_hypergradient(task, model, batches, features, theta=None, lr=0.5):
    """``HypergradientResult`` of -dev objective after ``len(batches)`` SGD steps from the model's
    weights, Phi_t = teacher(features[t]); ``theta``: the teacher's parameters (default its own)."""
    if task.dev_samples is None:
        task.dev_samples = task._load_dev_samples(torch.device("cpu"))
    student = FunctionalModule(model)
    names = [n for n, _ in model.named_parameters()]
    params = task._stack_streams({n: p.detach().clone() for n, p in model.named_parameters()}, 1)
    loss = task._student_loss(student, model, names)
    objective = task._dev_objective(student, model, names, 1)
    teacher = task.learner.teacher
    theta = theta if theta is not None else {n: p.detach() for n, p in teacher.named_parameters()}

    def inner(omega, hparams, batch, step):
        return loss(omega, functional_call(teacher, hparams, (features[step],)), batch)

    return hypergradient(inner, lambda p: -objective(p), params, theta, [[b] for b in batches],
                         optimizer=SGD(lr=lr))
