"""Bad input raises a clear error naming the value and what was expected; non-finite results are
reported (or raised on request), never passed off as finite."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fairseq_dynloss.hypergrad import (
    SGD,
    Adam,
    FunctionalModule,
    NonFiniteHypergradientError,
    hypergradient,
)

D = torch.float64


def _problem():
    gen = torch.Generator().manual_seed(0)
    params = {"w": torch.randn(3, 2, generator=gen, dtype=D)}
    hparams = {"scale": torch.tensor(1.0, dtype=D)}
    batches = [torch.randn(4, 3, generator=gen, dtype=D) for _ in range(3)]

    def inner(p, h, x, step):
        return h["scale"] * (x @ p["w"]).pow(2).mean()

    def outer(p):
        return p["w"].sum()

    return inner, outer, params, hparams, batches


def test_empty_batch_list():
    inner, outer, params, hparams, _ = _problem()
    with pytest.raises(ValueError, match=r"batches is empty; expected a sequence of T >= 1 batches"):
        hypergradient(inner, outer, params, hparams, [])


def test_keys_in_both_params_and_hparams():
    inner, outer, params, hparams, batches = _problem()
    with pytest.raises(ValueError, match=r"keys \['w'\] are in both params and hparams; expected disjoint"):
        hypergradient(inner, outer, params, {**hparams, "w": torch.ones(1, dtype=D)}, batches)


def test_learning_rate_naming_a_missing_hparam():
    inner, outer, params, hparams, batches = _problem()
    with pytest.raises(KeyError, match=r"hyper-parameter 'lr', but hparams has only \['scale'\]"):
        hypergradient(inner, outer, params, hparams, batches, SGD(lr="lr"))


def test_learning_rate_schedule_shorter_than_the_unroll():
    inner, outer, params, hparams, batches = _problem()
    with pytest.raises(ValueError, match=r"schedule has 2 entries; expected more than 2"):
        hypergradient(inner, outer, params, hparams, batches, SGD(lr=[0.1, 0.1]))
    with pytest.raises(ValueError, match=r"'lr' has shape \(2,\); expected a 0-d tensor or a 1-D tensor"):
        hypergradient(inner, outer, params, {**hparams, "lr": torch.ones(2, dtype=D)}, batches, SGD(lr="lr"))


def test_tensor_learning_rate_must_be_an_hparam():
    inner, outer, params, hparams, batches = _problem()
    with pytest.raises(TypeError, match="put it in hparams and give its name as lr"):
        hypergradient(inner, outer, params, hparams, batches, SGD(lr=torch.tensor(0.1)))


@pytest.mark.parametrize("bad", [0, -2, True, 1.5, "half"])
def test_checkpoint_every_not_positive(bad):
    inner, outer, params, hparams, batches = _problem()
    with pytest.raises(ValueError, match=rf"checkpoint_every must be a positive int .* got {bad!r}"):
        hypergradient(inner, outer, params, hparams, batches, checkpoint_every=bad)


@pytest.mark.parametrize("bad", [0, -1, 2.0])
def test_truncate_not_positive(bad):
    inner, outer, params, hparams, batches = _problem()
    with pytest.raises(ValueError, match=rf"truncate must be a positive int .* got {bad!r}"):
        hypergradient(inner, outer, params, hparams, batches, truncate=bad)


@pytest.mark.parametrize(
    "params, hparams, error, message",
    [
        ({}, {"scale": torch.tensor(1.0)}, ValueError, "params is empty"),
        ({"w": torch.ones(2)}, {}, ValueError, "hparams is empty"),
        ([torch.ones(2)], {"scale": torch.tensor(1.0)}, TypeError, "params must be a dict of str -> Tensor, got list"),
        ({"w": [1.0]}, {"scale": torch.tensor(1.0)}, TypeError, r"params\['w'\] must be a Tensor, got list"),
        (
            {"w": torch.ones(2)},
            {"k": torch.ones(2, dtype=torch.long)},
            TypeError,
            r"hparams\['k'\] has dtype torch.int64; expected a floating-point tensor",
        ),
    ],
)
def test_bad_params_or_hparams(params, hparams, error, message):
    with pytest.raises(error, match=message):
        hypergradient(lambda p, h, b, t: p["w"].sum(), lambda p: p["w"].sum(), params, hparams, [None])


def test_opt_state_with_wrong_keys():
    inner, outer, params, hparams, batches = _problem()
    with pytest.raises(ValueError, match=r"opt_state has buffers \{'momentum': \['v'\]\}; expected \{'momentum': \['w'\]\}"):
        hypergradient(
            inner, outer, params, hparams, batches, SGD(momentum=0.9), opt_state={"momentum": {"v": torch.zeros(1)}}
        )


def test_inner_loss_not_a_scalar_or_not_depending_on_params():
    _, outer, params, hparams, batches = _problem()
    with pytest.raises(ValueError, match=r"inner_loss must return a scalar tensor, got shape \(3, 2\) at step 0"):
        hypergradient(lambda p, h, x, t: p["w"] * 2, outer, params, hparams, batches)
    with pytest.raises(ValueError, match="inner_loss at step 0 does not depend on the student parameters"):
        hypergradient(lambda p, h, x, t: h["scale"] * 2, outer, params, hparams, batches)


def test_outer_loss_not_depending_on_params():
    inner, _, params, hparams, batches = _problem()
    with pytest.raises(ValueError, match="outer_loss does not depend on the student parameters"):
        hypergradient(inner, lambda p: torch.tensor(1.0), params, hparams, batches)


def test_functional_module_with_wrong_param_keys():
    student = FunctionalModule(nn.Linear(2, 2))
    with pytest.raises(KeyError, match=r"missing \['bias'\] and unexpected \['b'\]"):
        student({"weight": torch.ones(2, 2), "b": torch.ones(2)}, torch.ones(1, 2))
    with pytest.raises(KeyError, match=r"no buffers recorded before inner step 4"):
        student(student.params(), torch.ones(1, 2), step=4)


def _diverging_problem():
    """Huge learning rate on a quartic: the weights overflow to inf within a few steps."""
    params = {"w": torch.full((2,), 3.0, dtype=D)}
    hparams = {"scale": torch.tensor(1.0, dtype=D)}
    batches = [None] * 12

    def inner(p, h, batch, step):
        return h["scale"] * p["w"].pow(4).sum()

    def outer(p):
        return p["w"].pow(2).sum()

    return inner, outer, params, hparams, batches


def test_nonfinite_hypergradient_is_reported():
    inner, outer, params, hparams, batches = _diverging_problem()
    res = hypergradient(inner, outer, params, hparams, batches, SGD(lr=10.0))
    assert not res.finite
    assert res.nonfinite == ("outer_loss", "scale")
    assert not math.isfinite(res.grads["scale"].item())


def test_nonfinite_hypergradient_raises_on_request():
    inner, outer, params, hparams, batches = _diverging_problem()
    with pytest.raises(NonFiniteHypergradientError, match=r"non-finite values in \['outer_loss', 'scale'\] after 12"):
        hypergradient(inner, outer, params, hparams, batches, SGD(lr=10.0), raise_on_nonfinite=True)


def test_adam_with_a_parameter_whose_gradient_is_always_zero_stays_finite():
    """Adam's sqrt(v) at v = 0 would give 0 * inf = nan in the double backward.

    The gradient of ``dead`` is exactly 0 (a dead ReLU) but still a function of ``scale``, so a
    nan in the adjoint of its second moment would reach d outer / d scale.
    """
    gen = torch.Generator().manual_seed(0)
    params = {"used": torch.randn(3, generator=gen, dtype=D), "dead": torch.randn(3, generator=gen, dtype=D)}
    hparams = {"scale": torch.tensor(0.5, dtype=D)}

    def inner(p, h, x, step):
        return h["scale"] * (F.softplus(p["used"] * x).sum() + (p["dead"] * F.relu(x - 10.0)).sum())

    res = hypergradient(inner, lambda p: p["used"].pow(2).sum(), params, hparams, [torch.ones(3, dtype=D)] * 4, Adam(lr=0.1))
    assert res.finite and res.grads["scale"].abs() > 0
