"""The functional inner optimisers against torch.optim, and the learning-rate schedules."""

import pytest
import torch

from fairseq_dynloss.hypergrad import SGD, Adam, AdamW
from fairseq_dynloss.hypergrad.step import StepState, forward_step
from hypergrad_device import device  # noqa: F401 (a fixture)

D = torch.float64
STEPS = 6


def _problem(device):
    gen = torch.Generator().manual_seed(0)
    params = {"w": torch.randn(4, 3, generator=gen, dtype=D), "b": torch.randn(3, generator=gen, dtype=D)}
    batches = [torch.randn(5, 4, generator=gen, dtype=D).to(device) for _ in range(STEPS)]
    params = {k: v.to(device) for k, v in params.items()}

    def loss(p, x):
        return torch.tanh(x @ p["w"] + p["b"]).pow(2).sum() + 0.1 * p["w"].pow(4).sum()

    return params, batches, loss


def _functional_trajectory(optimizer, device, hparams=None):
    params, batches, loss = _problem(device)
    state = StepState(params, optimizer.init_state(params))
    for t, x in enumerate(batches):
        state, _ = forward_step(lambda p, h, b, s: loss(p, b), optimizer, state, hparams or {}, x, t)
    return state.params


def _torch_trajectory(make_optimizer, device, lrs=None):
    params, batches, loss = _problem(device)
    leaves = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    opt = make_optimizer(list(leaves.values()))
    for t, x in enumerate(batches):
        if lrs is not None:
            opt.param_groups[0]["lr"] = lrs[t]
        opt.zero_grad()
        loss(leaves, x).backward()
        opt.step()
    return {k: v.detach() for k, v in leaves.items()}


@pytest.mark.parametrize(
    "ours, theirs",
    [
        (SGD(lr=0.1), lambda p: torch.optim.SGD(p, lr=0.1)),
        (SGD(lr=0.1, momentum=0.9), lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9)),
        (
            SGD(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.01),
            lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.01),
        ),
        (Adam(lr=0.01), lambda p: torch.optim.Adam(p, lr=0.01)),
        (
            Adam(lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
            lambda p: torch.optim.Adam(p, lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
        ),
        (AdamW(lr=0.01, weight_decay=0.1), lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.1)),
    ],
    ids=["sgd", "momentum", "nesterov_wd", "adam", "adam_l2", "adamw"],
)
def test_optimizer_matches_torch_optim(ours, theirs, device):
    got, want = _functional_trajectory(ours, device), _torch_trajectory(theirs, device)
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=1e-12, atol=1e-14)


def test_schedules_number_sequence_callable_and_hparam_agree(device):
    lrs = [0.1 / (1 + t) for t in range(STEPS)]
    want = _torch_trajectory(lambda p: torch.optim.SGD(p, lr=1.0, momentum=0.5), device, lrs=lrs)
    for lr, hparams in [
        (lrs, None),
        (lambda t: 0.1 / (1 + t), None),
        ("lr", {"lr": torch.tensor(lrs, dtype=D, device=device)}),
    ]:
        got = _functional_trajectory(SGD(lr=lr, momentum=0.5), device, hparams)
        for k in want:
            torch.testing.assert_close(got[k], want[k], rtol=1e-12, atol=1e-14)


def test_scalar_hparam_learning_rate_is_a_constant_rate(device):
    got = _functional_trajectory(Adam(lr="lr"), device, {"lr": torch.tensor(0.01, dtype=D, device=device)})
    want = _functional_trajectory(Adam(lr=0.01), device)
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=0, atol=0)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: SGD(momentum=-0.1), "momentum must be >= 0, got -0.1"),
        (lambda: SGD(nesterov=True), "nesterov=True needs momentum > 0"),
        (lambda: Adam(betas=(0.9, 1.0)), r"betas must be two numbers in \[0, 1\), got \(0.9, 1.0\)"),
        (lambda: Adam(eps=-1.0), "eps must be >= 0, got -1.0"),
    ],
)
def test_bad_optimizer_settings_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_adam_root_is_sqrt_with_a_zero_derivative_at_zero_and_differentiable_twice():
    from fairseq_dynloss.hypergrad.optimizers import _sqrt_zero_safe

    x = torch.tensor([0.0, 1e-8, 0.25, 4.0], dtype=torch.float64, requires_grad=True)
    root = _sqrt_zero_safe(x)
    assert torch.equal(root.detach(), torch.sqrt(x.detach()))
    (grad,) = torch.autograd.grad(root.sum(), x, create_graph=True)
    want = torch.cat([torch.zeros(1, dtype=torch.float64), 0.5 / torch.sqrt(x.detach()[1:])])
    assert torch.equal(grad.detach(), want)  # autograd's SqrtBackward formula, 0 at x = 0
    (second,) = torch.autograd.grad(grad.sum(), x)
    want2 = torch.cat([torch.zeros(1, dtype=torch.float64), -0.25 * x.detach()[1:] ** -1.5])
    torch.testing.assert_close(second, want2, rtol=1e-12, atol=0)
    positive = x.detach()[2:].clone().requires_grad_(True)  # away from 0 by more than the step
    assert torch.autograd.gradcheck(_sqrt_zero_safe, (positive,))
    assert torch.autograd.gradgradcheck(_sqrt_zero_safe, (positive,))
    with torch.no_grad():  # no graph: the plain root
        assert torch.equal(_sqrt_zero_safe(x), torch.sqrt(x))
