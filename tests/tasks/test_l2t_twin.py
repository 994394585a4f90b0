"""translation_l2t's unroll runs the student's own fairseq optimiser (tasks/fairseq_twin.py): T
functional steps equal T real fairseq-train steps (Trainer.train_step: gradient normalisation,
--clip-norm, the optimiser, the lr scheduler) to 1e-6 at a fixed Phi, continuing the live moments;
optimisers without a twin are refused."""

import dataclasses

import pytest
import torch

from fairseq.trainer import Trainer
from fairseq_dynloss.hypergrad import FunctionalModule, NoFunctionalTwinError
from fairseq_dynloss.tasks.fairseq_twin import ClippedTwin, FairseqAdamTwin, fairseq_twin
from l2t_task_setup import build, train_batches

T, WARM = 3, 2
PHI = ("--phi-parametrisation", "bucketed", "--phi-buckets", "4", "--teacher-mode", "online",
       "--teacher-interval", "1000", "--max-tokens", "4000")


def with_lrs(twin, lrs):
    if isinstance(twin, ClippedTwin):
        return dataclasses.replace(twin, inner=dataclasses.replace(twin.inner, lr=lrs))
    return dataclasses.replace(twin, lr=lrs)


def fixed_phi_trainer(data, monkeypatch, *options, fixed=True):
    task, model, criterion, cfg = build(data, *PHI, *options)
    if fixed:
        monkeypatch.setattr(task, "_set_phi", lambda update, device: None)  # Phi stays fixed ...
    gen = torch.Generator().manual_seed(1)
    criterion.phi.load_tensors({"diag": 1 + 0.1 * torch.rand(criterion.phi.num_classes, generator=gen),
                                "B": 0.2 * torch.rand(4, 4, generator=gen)})  # ... and is not I
    return task, model, criterion, Trainer(cfg, task, model, criterion)


@pytest.mark.parametrize("options, kind", [
    (["--optimizer", "adam", "--lr", "0.003", "--lr-scheduler", "inverse_sqrt", "--warmup-updates", "4"],
     FairseqAdamTwin),
    (["--optimizer", "adam", "--adam-betas", "(0.8, 0.95)", "--adam-eps", "1e-6", "--weight-decay", "0.1",
      "--lr", "0.003", "--clip-norm", "0.5"], ClippedTwin),
    (["--optimizer", "sgd", "--momentum", "0.9", "--weight-decay", "0.01", "--lr", "0.3",
      "--lr-scheduler", "inverse_sqrt", "--warmup-updates", "3"], None),
])
def test_functional_steps_equal_real_fairseq_steps(toy_data_bin, monkeypatch, options, kind):
    task, model, criterion, trainer = fixed_phi_trainer(toy_data_bin / "data-bin", monkeypatch, *options)
    batches = train_batches(task, WARM + T)
    for sample in batches[:WARM]:  # live moments and a step count to continue from
        trainer.train_step([sample])
    named = dict(model.named_parameters())
    names = {p: f"0/{n}" for n, p in named.items()}
    start = {f"0/{n}": p.detach().clone() for n, p in named.items()}
    twin, state = fairseq_twin(trainer.optimizer, names, [0.0] * T, trainer.cfg.optimization.clip_norm)
    if kind is not None:
        assert isinstance(twin, kind)
    lrs = []
    for sample in batches[WARM:]:
        lrs.append(trainer.get_lr())
        trainer.train_step([sample])
    assert len(set(lrs)) > 1 or "--lr-scheduler" not in options  # the schedule moved
    twin = with_lrs(twin, lrs)
    loss = task._student_loss(FunctionalModule(model), model, list(named))
    params = start
    for step, sample in enumerate(batches[WARM:]):
        model.train()
        params = {k: v.detach().requires_grad_(True) for k, v in params.items()}
        grads = dict(zip(params, torch.autograd.grad(loss(params, criterion.phi.tensors(), [sample]),
                                                     list(params.values()), allow_unused=True)))
        grads = {k: torch.zeros_like(params[k]) if g is None else g for k, g in grads.items()}
        params, state = twin.update({k: v.detach() for k, v in params.items()}, state, grads, {}, step)
    moved = max(float((named[n] - start[f"0/{n}"]).abs().max()) for n in named)
    assert moved > 1e-3
    for n, p in named.items():
        torch.testing.assert_close(params[f"0/{n}"], p.detach(), rtol=0, atol=1e-6, msg=n)


@pytest.mark.parametrize("options, message", [
    (["--optimizer", "adagrad", "--lr", "0.01"], "Adagrad has no functional twin.*--optimizer sgd or adam"),
    (["--optimizer", "nag", "--lr", "0.01"], "NAG has no functional twin.*--optimizer sgd or adam"),
])
def test_optimisers_without_a_twin_are_refused(toy_data_bin, monkeypatch, options, message):
    task, model, criterion, trainer = fixed_phi_trainer(toy_data_bin / "data-bin", monkeypatch, *options)
    names = {p: n for n, p in model.named_parameters()}
    with pytest.raises(NoFunctionalTwinError, match=message):
        fairseq_twin(trainer.optimizer, names, [0.01], 0.0)


def test_the_teacher_step_unrolls_the_live_optimiser(toy_data_bin, monkeypatch):
    """Online mode, one teacher step after 4 real updates: the unroll gets the fairseq Adam twin
    with the live moments, Adam's step count and the rates of the buffered updates."""
    task, model, criterion, trainer = fixed_phi_trainer(
        toy_data_bin / "data-bin", monkeypatch, "--optimizer", "adam", "--lr", "0.003", "--lr-scheduler",
        "inverse_sqrt", "--warmup-updates", "4", "--unroll-steps", "2", "--teacher-interval", "3",
        "--weight-decay", "0.01", fixed=False)
    calls = []

    def step(student_loss, dev_objective, params, batches, features, opt_state=None, optimizer=None):
        live = trainer.optimizer.optimizer
        calls.append((optimizer, opt_state, {n: {k: live.state[p][k].clone() for k in ("exp_avg", "exp_avg_sq")}
                                             for n, p in model.named_parameters()}))
        raise StopIteration  # nothing else to do

    monkeypatch.setattr(task.learner, "step", step)
    lrs = []
    for sample in train_batches(task, 4):
        lrs.append(trainer.get_lr())
        try:
            trainer.train_step([sample])
        except StopIteration:
            break
    assert len(calls) == 1 and len(lrs) == 4  # at update 3 (0-based), before its real step
    twin, opt_state, live = calls[0]
    assert isinstance(twin, FairseqAdamTwin)
    assert twin.lr == lrs[2:4] and twin.first_step == 3 and twin.weight_decay == 0.01
    for name, buffers in live.items():
        for key in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(opt_state[key][f"0/{name}"], buffers[key]), (name, key)
