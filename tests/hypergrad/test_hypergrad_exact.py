"""hypergradient against the naive full-graph unroll and central finite differences (float64)."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fairseq_dynloss.hypergrad import SGD, Adam, AdamW, FunctionalModule, hypergradient, naive_hypergradient
from fairseq_dynloss.hypergrad.step import StepState, forward_step
from hypergrad_device import device  # noqa: F401 (a fixture)

D = torch.float64
T = 7
CLASSES = 3


def _to(tensors, device):
    return {k: v.to(device) for k, v in tensors.items()}


def _rel_err(got, want):
    return max(((got[k] - want[k]).norm() / want[k].norm().clamp_min(1e-30)).item() for k in want)


def _weighted_ce(logits, y, hparams):
    """Per-class weights softmax(hparams["w"]) * C: the teacher's knob on the inner loss."""
    weights = torch.softmax(hparams["w"], 0)[y] * CLASSES
    return (F.cross_entropy(logits, y, reduction="none") * weights).mean()


def _mlp_problem(device, steps=T, dropout=0.0):
    """Built on the CPU from a seeded generator, then moved to ``device``."""
    gen = torch.Generator().manual_seed(1)
    params = {
        "w1": torch.randn(5, 8, generator=gen, dtype=D) * 0.5,
        "b1": torch.zeros(8, dtype=D),
        "w2": torch.randn(8, CLASSES, generator=gen, dtype=D) * 0.5,
    }
    hparams = {"w": torch.randn(CLASSES, generator=gen, dtype=D) * 0.1, "lr": torch.tensor(0.3, dtype=D)}
    batches = [
        (torch.randn(6, 5, generator=gen, dtype=D), torch.randint(0, CLASSES, (6,), generator=gen))
        for _ in range(steps)
    ]
    x_dev, y_dev = torch.randn(10, 5, generator=gen, dtype=D), torch.randint(0, CLASSES, (10,), generator=gen)
    params, hparams = _to(params, device), _to(hparams, device)
    batches = [(x.to(device), y.to(device)) for x, y in batches]
    x_dev, y_dev = x_dev.to(device), y_dev.to(device)

    def net(p, x):
        h = torch.tanh(x @ p["w1"] + p["b1"])
        return F.dropout(h, dropout, training=dropout > 0) @ p["w2"]

    def inner(p, h, batch, step):
        x, y = batch
        return _weighted_ce(net(p, x), y, h)

    def outer(p):
        return F.cross_entropy(torch.tanh(x_dev @ p["w1"] + p["b1"]) @ p["w2"], y_dev)

    return inner, outer, params, hparams, batches


OPTIMIZERS = {
    "sgd": SGD(lr=0.3),
    "momentum_lr_hparam": SGD(lr="lr", momentum=0.9),
    "nesterov_wd": SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
    "adam": Adam(lr=0.02),
    "adamw_lr_hparam": AdamW(lr="lr", weight_decay=0.1),
}


@pytest.mark.parametrize("checkpoint_every", [None, 1, 3, T, "sqrt"])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_mlp_equals_naive_unroll(name, checkpoint_every, device):
    inner, outer, params, hparams, batches = _mlp_problem(device)
    optimizer = OPTIMIZERS[name]
    want = naive_hypergradient(inner, outer, params, hparams, batches, optimizer)
    got = hypergradient(inner, outer, params, hparams, batches, optimizer, checkpoint_every=checkpoint_every)
    assert _rel_err(got.grads, want.grads) < 1e-9
    assert got.grads["w"].norm() > 1e-3  # the hypergradient is not trivially zero
    torch.testing.assert_close(got.outer_loss, want.outer_loss, rtol=1e-12, atol=0)
    for k in params:
        torch.testing.assert_close(got.params[k], want.params[k], rtol=1e-12, atol=1e-14)
    assert got.finite and got.nonfinite == ()
    assert got.inner_losses.shape == (T,)


@pytest.mark.parametrize(
    "policy, calls",
    [
        ({}, T),  # keep-all: the graph is recorded in the forward sweep, nothing is recomputed
        ({"truncate": 3}, T),
        ({"checkpoint_every": 3}, T + 6),  # segments [0,3) [3,6) [6,7): the last one is not rerun
        ({"checkpoint_every": 1}, T + T - 1),
    ],
)
def test_each_step_runs_once_plus_once_per_recomputation(policy, calls, device):
    inner, outer, params, hparams, batches = _mlp_problem(device)
    steps = []

    def counted(p, h, batch, step):
        steps.append(step)
        return inner(p, h, batch, step)

    hypergradient(counted, outer, params, hparams, batches, OPTIMIZERS["momentum_lr_hparam"], **policy)
    assert len(steps) == calls


def test_lr_hparam_is_differentiated(device):
    inner, outer, params, hparams, batches = _mlp_problem(device)
    got = hypergradient(inner, outer, params, hparams, batches, SGD(lr="lr", momentum=0.5), checkpoint_every=2)
    assert got.grads["lr"].shape == () and got.grads["lr"].abs() > 1e-6


@pytest.mark.parametrize("truncate", [1, 3])
@pytest.mark.parametrize("name", ["momentum_lr_hparam", "adam"])
def test_truncation_equals_naive_unroll_detached_at_T_minus_K(name, truncate, device):
    inner, outer, params, hparams, batches = _mlp_problem(device)
    optimizer = OPTIMIZERS[name]
    want = naive_hypergradient(inner, outer, params, hparams, batches, optimizer, truncate=truncate)
    full = naive_hypergradient(inner, outer, params, hparams, batches, optimizer)
    for checkpoint_every in (None, 2):
        got = hypergradient(
            inner, outer, params, hparams, batches, optimizer, checkpoint_every=checkpoint_every, truncate=truncate
        )
        assert _rel_err(got.grads, want.grads) < 1e-9
    assert _rel_err(want.grads, full.grads) > 1e-3  # truncation changes the answer


@pytest.mark.parametrize("truncate", [T, T + 5])
def test_truncation_to_T_or_more_is_the_full_hypergradient(truncate, device):
    inner, outer, params, hparams, batches = _mlp_problem(device)
    want = naive_hypergradient(inner, outer, params, hparams, batches, OPTIMIZERS["momentum_lr_hparam"])
    got = hypergradient(inner, outer, params, hparams, batches, OPTIMIZERS["momentum_lr_hparam"], truncate=truncate)
    assert _rel_err(got.grads, want.grads) < 1e-9


def test_truncate_1_with_sgd_is_the_last_step_mixed_derivative(device):
    """K=1, plain SGD: d theta = -lr * d/d theta [ grad_w L(w_{T-1}, theta) . dM/dw_T ]."""
    inner, outer, params, hparams, batches = _mlp_problem(device)
    lr = 0.3
    got = hypergradient(inner, outer, params, hparams, batches, SGD(lr=lr), truncate=1)
    state = StepState(dict(params), {})
    for t, batch in enumerate(batches[:-1]):
        state, _ = forward_step(inner, SGD(lr=lr), state, hparams, batch, t)
    w = {k: v.clone().requires_grad_(True) for k, v in state.params.items()}
    theta = hparams["w"].clone().requires_grad_(True)
    g = torch.autograd.grad(inner(w, {"w": theta}, batches[-1], T - 1), list(w.values()), create_graph=True)
    w_final = {k: (v - lr * gk).detach().requires_grad_(True) for (k, v), gk in zip(w.items(), g)}
    dmdw = torch.autograd.grad(outer(w_final), list(w_final.values()))
    mixed = torch.autograd.grad(sum((gk * d).sum() for gk, d in zip(g, dmdw)), theta)[0]
    torch.testing.assert_close(got.grads["w"], -lr * mixed, rtol=1e-10, atol=1e-15)


def _finite_differences(inner, outer, params, hparams, batches, optimizer, name, eps=1e-6):
    def outer_at(hp):
        state = StepState(dict(params), optimizer.init_state(params))
        for t, batch in enumerate(batches):
            state, _ = forward_step(inner, optimizer, state, hp, batch, t)
        return outer(state.params)

    fd = torch.zeros_like(hparams[name])
    for i in range(fd.numel()):
        plus = {k: v.clone() for k, v in hparams.items()}
        minus = {k: v.clone() for k, v in hparams.items()}
        plus[name].view(-1)[i] += eps
        minus[name].view(-1)[i] -= eps
        fd.view(-1)[i] = (outer_at(plus) - outer_at(minus)) / (2 * eps)
    return fd


@pytest.mark.parametrize("name", ["momentum_lr_hparam", "adam", "adamw_lr_hparam"])
def test_mlp_equals_central_finite_differences(name, device):
    inner, outer, params, hparams, batches = _mlp_problem(device, steps=5)
    optimizer = OPTIMIZERS[name]
    got = hypergradient(inner, outer, params, hparams, batches, optimizer, checkpoint_every=2)
    names = ["w", "lr"] if isinstance(optimizer.lr, str) else ["w"]
    for hp in names:
        fd = _finite_differences(inner, outer, params, hparams, batches, optimizer, hp)
        assert ((got.grads[hp] - fd).norm() / fd.norm()).item() < 1e-5


def _rng_states(device):
    """The CPU generator state, and that of ``device``'s generator when it is a GPU."""
    return [torch.get_rng_state()] + ([torch.cuda.get_rng_state(device)] if device.type == "cuda" else [])


def test_dropout_is_replayed_and_rng_left_as_after_the_unroll(device):
    inner, outer, params, hparams, batches = _mlp_problem(device, dropout=0.3)
    optimizer = OPTIMIZERS["momentum_lr_hparam"]
    torch.manual_seed(123)
    want = naive_hypergradient(inner, outer, params, hparams, batches, optimizer)
    rng_after_naive = _rng_states(device)
    for checkpoint_every in (None, 3):
        torch.manual_seed(123)
        got = hypergradient(inner, outer, params, hparams, batches, optimizer, checkpoint_every=checkpoint_every)
        assert all(torch.equal(a, b) for a, b in zip(_rng_states(device), rng_after_naive))
        assert _rel_err(got.grads, want.grads) < 1e-9
    torch.manual_seed(124)
    other_masks = naive_hypergradient(inner, outer, params, hparams, batches, optimizer)
    assert _rel_err(other_masks.grads, want.grads) > 1e-3  # dropout does matter here


def test_warm_started_optimizer_state_equals_naive(device):
    inner, outer, params, hparams, batches = _mlp_problem(device)
    optimizer = SGD(lr=0.1, momentum=0.9)
    gen = torch.Generator().manual_seed(5)
    opt_state = {"momentum": {k: torch.randn(v.shape, generator=gen, dtype=D).to(device) for k, v in params.items()}}
    want = naive_hypergradient(inner, outer, params, hparams, batches, optimizer, opt_state=opt_state)
    got = hypergradient(inner, outer, params, hparams, batches, optimizer, checkpoint_every=3, opt_state=opt_state)
    assert _rel_err(got.grads, want.grads) < 1e-9
    cold = hypergradient(inner, outer, params, hparams, batches, optimizer)
    assert _rel_err(cold.grads, want.grads) > 1e-3


def test_inputs_are_not_modified(device):
    inner, outer, params, hparams, batches = _mlp_problem(device)
    before = {k: v.clone() for k, v in {**params, **hparams}.items()}
    hypergradient(inner, outer, params, hparams, batches, OPTIMIZERS["adam"], checkpoint_every=2)
    for k, v in {**params, **hparams}.items():
        assert torch.equal(v, before[k]) and not v.requires_grad


class _ConvNet(nn.Module):
    """LeNet-like: conv -> BatchNorm -> ReLU -> pool -> dropout -> linear, output tied to nothing."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3)
        self.bn = nn.BatchNorm2d(3)
        self.drop = nn.Dropout(0.2)
        self.fc = nn.Linear(3 * 3 * 3, CLASSES)

    def forward(self, x):
        h = F.max_pool2d(F.relu(self.bn(self.conv(x))), 2)
        return self.fc(self.drop(h.flatten(1)))


def _cnn_problem(device):
    torch.manual_seed(7)
    model = _ConvNet().to(D).to(device).train()
    student = FunctionalModule(model)
    gen = torch.Generator().manual_seed(2)
    batches = [
        (torch.randn(8, 1, 8, 8, generator=gen, dtype=D), torch.randint(0, CLASSES, (8,), generator=gen))
        for _ in range(5)
    ]
    x_dev, y_dev = torch.randn(12, 1, 8, 8, generator=gen, dtype=D), torch.randint(0, CLASSES, (12,), generator=gen)
    hparams = {"w": (torch.randn(CLASSES, generator=gen, dtype=D) * 0.1).to(device)}
    batches = [(x.to(device), y.to(device)) for x, y in batches]
    x_dev, y_dev = x_dev.to(device), y_dev.to(device)

    def inner(p, h, batch, step):
        x, y = batch
        return _weighted_ce(student(p, x, step=step), y, h)

    def outer(p):
        model.eval()
        try:
            return F.cross_entropy(student(p, x_dev, step=len(batches)), y_dev)
        finally:
            model.train()

    return model, student, inner, outer, hparams, batches


@pytest.mark.parametrize("name", ["momentum_lr_hparam", "adam"])
def test_cnn_with_batchnorm_and_dropout_equals_naive(name, device):
    model, student, inner, outer, hparams, batches = _cnn_problem(device)
    hparams = {**hparams, "lr": torch.tensor(0.1, dtype=D, device=device)}
    optimizer = OPTIMIZERS[name]
    torch.manual_seed(11)
    want = naive_hypergradient(inner, outer, student.params(), hparams, batches, optimizer)
    want_buffers = copy.deepcopy(student.buffers_at(len(batches)))
    torch.manual_seed(11)
    got = hypergradient(inner, outer, student.params(), hparams, batches, optimizer, checkpoint_every=2)
    assert _rel_err(got.grads, want.grads) < 1e-9
    for k, v in want_buffers.items():
        assert torch.equal(student.buffers_at(len(batches))[k], v)


def test_cnn_trajectory_and_running_stats_match_a_real_training_loop(device):
    model, student, inner, outer, hparams, batches = _cnn_problem(device)
    original_buffers = {k: v.clone() for k, v in model.named_buffers()}
    torch.manual_seed(3)
    got = hypergradient(inner, outer, student.params(), hparams, batches, SGD(lr=0.1, momentum=0.9), checkpoint_every=2)

    real = copy.deepcopy(model)
    opt = torch.optim.SGD(real.parameters(), lr=0.1, momentum=0.9)
    torch.manual_seed(3)
    for x, y in batches:
        opt.zero_grad()
        _weighted_ce(real(x), y, hparams).backward()
        opt.step()
    for k, v in real.named_parameters():
        torch.testing.assert_close(got.params[k], v.detach(), rtol=1e-12, atol=1e-14)
    for k, v in real.named_buffers():
        torch.testing.assert_close(student.buffers_at(len(batches))[k], v, rtol=1e-12, atol=1e-14)
    for k, v in model.named_buffers():  # the student module itself is untouched
        assert torch.equal(v, original_buffers[k])


class _TiedNet(nn.Module):
    """Embedding whose weight is also the output projection (like --share-all-embeddings)."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(CLASSES + 2, 4)
        self.hidden = nn.Linear(4, 4)
        self.out = nn.Linear(4, CLASSES + 2, bias=False)
        self.out.weight = self.embed.weight

    def forward(self, tokens):
        return self.out(torch.tanh(self.hidden(self.embed(tokens).mean(1))))


def test_weight_ties_survive_and_match_naive(device):
    torch.manual_seed(0)
    model = _TiedNet().to(D).to(device)
    tied = model.embed.weight
    student = FunctionalModule(model)
    params = student.params()
    assert "out.weight" not in params  # one entry per distinct Parameter
    gen = torch.Generator().manual_seed(0)
    batches = [
        (
            torch.randint(0, 5, (4, 3), generator=gen).to(device),
            torch.randint(0, CLASSES, (4,), generator=gen).to(device),
        )
        for _ in range(4)
    ]
    hparams = {"w": torch.zeros(CLASSES + 2, dtype=D, device=device)}

    def inner(p, h, batch, step):
        x, y = batch
        return (F.cross_entropy(student(p, x), y, reduction="none") * torch.softmax(h["w"], 0)[y]).sum()

    def outer(p):
        return F.cross_entropy(student(p, batches[0][0]), batches[0][1])

    want = naive_hypergradient(inner, outer, params, hparams, batches, SGD(lr=0.5))
    got = hypergradient(inner, outer, params, hparams, batches, SGD(lr=0.5), checkpoint_every=2)
    assert _rel_err(got.grads, want.grads) < 1e-9
    assert model.embed._parameters["weight"] is tied and model.out._parameters["weight"] is tied
    before = tied.detach().clone()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    F.cross_entropy(model(batches[0][0]), batches[0][1]).backward()
    opt.step()
    assert not torch.equal(tied, before) and model.out.weight is model.embed.weight
