"""functional_twin: a live torch.optim optimiser continued functionally. T functional steps from
its buffers equal T more real steps (float64, 1e-10), through the dynloss-train scheduler;
optimisers or options without a twin are refused by name."""

import math

import pytest
import torch
from omegaconf import OmegaConf

from fairseq_dynloss.hypergrad import NoFunctionalTwinError, functional_twin
from fairseq_dynloss.hypergrad.schedule import LogScaled
from fairseq_dynloss.hypergrad.step import StepState, forward_step
from fairseq_dynloss.trainer.schedule import build_scheduler, lr_ratio_at_epoch

D = torch.float64
WARM, STEPS = 4, 5  # real steps before the twin takes over, and steps compared after


def _problem():
    gen = torch.Generator().manual_seed(0)
    params = {"w": torch.randn(4, 3, generator=gen, dtype=D), "b": torch.randn(3, generator=gen, dtype=D)}
    batches = [torch.randn(5, 4, generator=gen, dtype=D) for _ in range(WARM + STEPS)]

    def loss(p, x):
        return torch.tanh(x @ p["w"] + p["b"]).pow(2).sum() + 0.1 * p["w"].pow(4).sum()

    return params, batches, loss


OPTIMISERS = {
    "sgd_nesterov_wd": lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "sgd_plain": lambda ps: torch.optim.SGD(ps, lr=0.05),
    "adam_wd": lambda ps: torch.optim.Adam(ps, lr=0.01, betas=(0.8, 0.95), eps=1e-6, weight_decay=1e-2),
    "adamw": lambda ps: torch.optim.AdamW(ps, lr=0.01, weight_decay=0.1),
}


@pytest.mark.parametrize("name", sorted(OPTIMISERS))
@pytest.mark.parametrize("schedule", ["constant", "multistep", "cosine"])
def test_twin_steps_equal_real_steps_from_live_moments(name, schedule):
    """WARM real steps, then the twin continues STEPS steps from the live buffers (Adam's step count
    too) under the loop's per-epoch scheduler (one 'epoch' per step here); the real optimiser takes
    the same STEPS steps."""
    params, batches, loss = _problem()
    leaves = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    opt = OPTIMISERS[name](list(leaves.values()))
    optim_cfg = OmegaConf.create({"schedule": schedule, "milestones": [0.5, 0.75], "gamma": 0.1})
    epochs = WARM + STEPS
    scheduler = build_scheduler(opt, optim_cfg, epochs)
    for x in batches[:WARM]:
        opt.zero_grad()
        loss(leaves, x).backward()
        opt.step()
        scheduler.step()
    peak = opt.param_groups[0]["initial_lr"]
    rates = [peak * lr_ratio_at_epoch(optim_cfg, WARM + t, epochs) for t in range(STEPS)]
    assert opt.param_groups[0]["lr"] == pytest.approx(rates[0], rel=1e-12)  # one schedule source
    twin, opt_state = functional_twin(opt, {p: k for k, p in leaves.items()}, lr=rates)
    state = StepState({k: v.detach().clone() for k, v in leaves.items()}, opt_state)
    for t, x in enumerate(batches[WARM:]):
        state, _ = forward_step(lambda p, h, b, s: loss(p, b), twin, state, {}, x, t)
    for x in batches[WARM:]:
        opt.zero_grad()
        loss(leaves, x).backward()
        opt.step()
        scheduler.step()
    for k, v in leaves.items():
        torch.testing.assert_close(state.params[k], v.detach(), rtol=1e-10, atol=1e-12)


def test_twin_of_a_fresh_optimiser_starts_from_zero_buffers():
    params, _, _ = _problem()
    leaves = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    twin, state = functional_twin(torch.optim.Adam(list(leaves.values()), lr=0.1), {p: k for k, p in leaves.items()})
    assert twin.first_step == 0 and twin.lr == 0.1
    assert all(float(b.abs().max()) == 0 for buffers in state.values() for b in buffers.values())


def test_log_scaled_rate_multiplies_the_schedule_by_exp_of_the_hyperparameter():
    params, batches, loss = _problem()
    leaves = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    opt = torch.optim.SGD(list(leaves.values()), lr=0.05, momentum=0.9)
    twin, opt_state = functional_twin(opt, {p: k for k, p in leaves.items()}, lr=LogScaled([0.05, 0.02], "s"))
    hparams = {"s": torch.tensor(0.3, dtype=D)}
    reference, _ = functional_twin(opt, {p: k for k, p in leaves.items()},
                                   lr=[0.05 * math.exp(0.3), 0.02 * math.exp(0.3)])
    a = b = StepState(dict(params), opt_state)
    for t, x in enumerate(batches[:2]):
        a, _ = forward_step(lambda p, h, bb, s: loss(p, bb), twin, a, hparams, x, t)
        b, _ = forward_step(lambda p, h, bb, s: loss(p, bb), reference, b, {}, x, t)
    for k in params:
        torch.testing.assert_close(a.params[k], b.params[k], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("make, match", [
    (lambda ps: torch.optim.RMSprop(ps, lr=0.1), "RMSprop has no functional twin; expected torch.optim.SGD, Adam or AdamW"),
    (lambda ps: torch.optim.Adam(ps, lr=0.1, amsgrad=True), r"Adam\(amsgrad=True\) has no functional twin"),
    (lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, dampening=0.5), r"SGD\(dampening=0.5\) has no functional twin"),
    (lambda ps: torch.optim.SGD(ps, lr=0.1, maximize=True), r"SGD\(maximize=True\) has no functional twin"),
    (lambda ps: torch.optim.SGD([{"params": ps[:1]}, {"params": ps[1:], "lr": 0.5}], lr=0.1),
     r"parameter groups with different \['lr'\]"),
])
def test_optimisers_without_a_twin_are_refused(make, match):
    params, _, _ = _problem()
    leaves = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    with pytest.raises(NoFunctionalTwinError, match=match):
        functional_twin(make(list(leaves.values())), {p: k for k, p in leaves.items()})


def test_unnamed_parameters_are_refused():
    params, _, _ = _problem()
    leaves = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    with pytest.raises(ValueError, match=r"names has no entry for optimised parameters at positions \[1\]"):
        functional_twin(torch.optim.SGD(list(leaves.values()), lr=0.1), {leaves["w"]: "w"})
