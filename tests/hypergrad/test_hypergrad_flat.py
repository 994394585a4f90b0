"""The flat parameter layout of the engine (hypergrad/flat.py): exact, and used only where it is."""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from fairseq_dynloss.hypergrad import SGD, Adam, hypergradient, naive_hypergradient
from fairseq_dynloss.hypergrad.flat import FLAT, FlatLayout

D = torch.float64


def _problem(dtypes=(D, D, D)):
    gen = torch.Generator().manual_seed(3)
    params = {"w1": torch.randn(4, 6, generator=gen, dtype=dtypes[0]) * 0.5,
              "b1": torch.randn(6, generator=gen, dtype=dtypes[1]) * 0.1,
              "w2": torch.randn(6, 3, generator=gen, dtype=dtypes[2]) * 0.5}
    hparams = {"w": torch.randn(3, generator=gen, dtype=D) * 0.1}
    batches = [(torch.randn(5, 4, generator=gen, dtype=D), torch.randint(0, 3, (5,), generator=gen))
               for _ in range(5)]
    x_dev, y_dev = torch.randn(7, 4, generator=gen, dtype=D), torch.randint(0, 3, (7,), generator=gen)

    def net(p, x):
        return torch.tanh(x @ p["w1"].to(D) + p["b1"].to(D)) @ p["w2"].to(D)

    def inner(p, h, batch, step):
        x, y = batch
        weights = torch.softmax(h["w"], 0)[y] * 3
        return (F.cross_entropy(net(p, x), y, reduction="none") * weights).mean()

    return inner, lambda p: F.cross_entropy(net(p, x_dev), y_dev), params, hparams, batches


def test_views_pack_unpack_round_trip():
    _, _, params, _, _ = _problem()
    layout = FlatLayout.of(params, elementwise=True)
    state = {"exp_avg": {k: v + 1 for k, v in params.items()}}
    flat_params, flat_state = layout.pack(params, state)
    assert list(flat_params) == [FLAT] and flat_params[FLAT].shape == (4 * 6 + 6 + 6 * 3,)
    back_params, back_state = layout.unpack(flat_params, flat_state)
    assert list(back_params) == list(params)
    for k in params:
        assert torch.equal(back_params[k], params[k]) and torch.equal(back_state["exp_avg"][k], params[k] + 1)


def test_gradient_of_flat_is_the_concatenated_gradients():
    inner, _, params, hparams, batches = _problem()
    layout = FlatLayout.of(params, elementwise=True)
    flat = layout.flatten(params).requires_grad_(True)
    (got,) = torch.autograd.grad(inner(layout.views(flat), hparams, batches[0], 0), flat)
    leaves = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    want = torch.autograd.grad(inner(leaves, hparams, batches[0], 0), list(leaves.values()))
    assert torch.equal(got, torch.cat([g.reshape(-1) for g in want]))


def test_not_flattened_for_one_tensor_mixed_dtypes_or_a_per_tensor_optimizer():
    _, _, params, _, _ = _problem()
    assert FlatLayout.of(params, elementwise=False) is None
    assert FlatLayout.of({"w1": params["w1"]}, elementwise=True) is None
    mixed = dict(params, b1=params["b1"].float())
    assert FlatLayout.of(mixed, elementwise=True) is None


@dataclass(frozen=True)
class _NormalisedSGD(SGD):
    """A per-tensor rule (each tensor's step divided by its gradient's norm): must not be flattened."""

    elementwise = False

    def update(self, params, state, grads, hparams, step):
        assert FLAT not in params, "a per-tensor optimiser was given the flat layout"
        scaled = {k: g / g.norm().clamp_min(1e-12) for k, g in grads.items()}
        return super().update(params, state, scaled, hparams, step)


def test_flat_engine_equals_per_tensor_naive_unroll_and_per_tensor_rules_stay_per_tensor():
    inner, outer, params, hparams, batches = _problem()
    for optimizer in (Adam(lr=0.05), SGD(lr=0.2, momentum=0.9), _NormalisedSGD(lr=0.2)):
        want = naive_hypergradient(inner, outer, params, hparams, batches, optimizer)
        for policy in (None, 2):
            got = hypergradient(inner, outer, params, hparams, batches, optimizer, checkpoint_every=policy)
            torch.testing.assert_close(got.grads["w"], want.grads["w"], rtol=1e-12, atol=1e-15)
            assert list(got.params) == list(params)
            for k in params:
                torch.testing.assert_close(got.params[k], want.params[k], rtol=1e-12, atol=1e-15)
                for name in got.opt_state:
                    torch.testing.assert_close(got.opt_state[name][k], want.opt_state[name][k], rtol=1e-12,
                                               atol=1e-15)


def test_mixed_dtypes_run_per_tensor():
    inner, outer, params, hparams, batches = _problem(dtypes=(D, torch.float32, D))
    want = naive_hypergradient(inner, outer, params, hparams, batches, Adam(lr=0.05))
    got = hypergradient(inner, outer, params, hparams, batches, Adam(lr=0.05), checkpoint_every=2)
    assert got.params["b1"].dtype == torch.float32
    torch.testing.assert_close(got.grads["w"], want.grads["w"], rtol=1e-10, atol=1e-12)


def test_flat_and_per_tensor_engines_agree_to_round_off(monkeypatch):
    """flat.py's claim: an elementwise optimiser computes the same numbers on the concatenation
    (up to the rounding of vectorised vs scalar kernel paths)."""
    import importlib

    engine = importlib.import_module("fairseq_dynloss.hypergrad.hypergradient")
    inner, outer, params, hparams, batches = _problem()
    for optimizer in (Adam(lr=0.05, weight_decay=0.01), SGD(lr=0.2, momentum=0.9, nesterov=True, weight_decay=0.01)):
        flat = hypergradient(inner, outer, params, hparams, batches, optimizer, checkpoint_every=2)
        with monkeypatch.context() as patch:
            patch.setattr(engine.FlatLayout, "of", staticmethod(lambda *args: None))
            per_tensor = hypergradient(inner, outer, params, hparams, batches, optimizer, checkpoint_every=2)
        torch.testing.assert_close(flat.grads["w"], per_tensor.grads["w"], rtol=1e-13, atol=1e-16)
        for k in params:
            torch.testing.assert_close(flat.params[k], per_tensor.params[k], rtol=1e-14, atol=1e-16)
