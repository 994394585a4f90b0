"""The functional twin of a fairseq student's optimiser, for translation_l2t's unroll.

What fairseq-train does to the weights in one update, after the summed loss's backward:
gradients divided by the update's sample size (the unroll's loss is already per token), their
global L2 norm clipped to ``--clip-norm`` (``fairseq.utils.clip_grad_norm_``: factor
``min(1, c / (norm + 1e-6))``), then the optimiser's step at the learning rate the scheduler set
for that update. ``fairseq_twin`` reproduces the last two:

* ``--optimizer sgd`` is ``torch.optim.SGD``: ``hypergrad.functional_twin``;
* ``--optimizer adam`` is ``fairseq.optim.adam.Adam``, which differs from ``torch.optim.Adam``:
  ``eps`` is added to ``sqrt(v)`` *before* the bias correction (the step is
  ``lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)``) and weight decay is decoupled,
  ``w <- w - lr wd w`` before the step: ``FairseqAdamTwin``;
* anything else (Adagrad, NAG, Adafactor, FusedAdam on GPUs with apex, fp16 wrappers, amsgrad)
  is refused with ``NoFunctionalTwinError``: never replaced by another optimiser.

Functional parameters may hold several unrolled students ("streams", keys ``"j/name"``,
``translation_l2t``): ``ClippedTwin`` clips each stream by its own norm, as fairseq clips each
real update.
"""

import math
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import torch

from ..hypergrad import Adam, InnerOptimizer, NoFunctionalTwinError, functional_twin
from ..hypergrad.optimizers import OptState, _sqrt_zero_safe
from ..hypergrad.schedule import learning_rate_at
from ..hypergrad.twin import _group


@dataclass(frozen=True)
class FairseqAdamTwin(Adam):
    """``fairseq.optim.adam.Adam`` (amsgrad off) as a functional step (module docstring)."""

    def update(self, params, state, grads, hparams, step):
        lr = learning_rate_at(self.lr, hparams, step)
        beta1, beta2 = self.betas
        count = self.first_step + step + 1
        step_size = lr * math.sqrt(1.0 - beta2 ** count) / (1.0 - beta1 ** count)
        new_params, exp_avg, exp_avg_sq = {}, {}, {}
        for k, p in params.items():
            g = grads[k]
            m = beta1 * state["exp_avg"][k] + (1.0 - beta1) * g
            v = beta2 * state["exp_avg_sq"][k] + (1.0 - beta2) * g * g
            if self.weight_decay:
                p = p - (self.weight_decay * lr) * p
            new_params[k] = p - step_size * (m / (_sqrt_zero_safe(v) + self.eps))
            exp_avg[k], exp_avg_sq[k] = m, v
        return new_params, {"exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}


@dataclass(frozen=True)
class ClippedTwin(InnerOptimizer):
    """``inner`` after fairseq's gradient-norm clipping, per group of parameters.

    Attributes:
        inner: the optimiser step.
        max_norm: ``--clip-norm`` c > 0.
        groups: the parameter names of each independently clipped student (stream).
    """

    inner: InnerOptimizer
    max_norm: float
    groups: Tuple[Tuple[str, ...], ...]

    @property
    def lr(self):
        return self.inner.lr

    @property
    def buffer_names(self):
        return self.inner.buffer_names

    def update(self, params, state, grads, hparams, step):
        clipped = dict(grads)
        for names in self.groups:
            norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(grads[n].float()) for n in names]))
            coef = torch.clamp(self.max_norm / (norm + 1e-6), max=1.0)
            for n in names:
                clipped[n] = grads[n] * coef.to(grads[n].dtype)
        return self.inner.update(params, state, clipped, hparams, step)


def _inner_torch_optimizer(optimizer):
    """The ``torch.optim.Optimizer`` inside a fairseq optimiser wrapper (refusing fp16 wrappers)."""
    inner = getattr(optimizer, "optimizer", optimizer)
    if not isinstance(inner, torch.optim.Optimizer):  # FP16Optimizer wraps another FairseqOptimizer
        raise NoFunctionalTwinError(f"{type(optimizer).__name__} (e.g. --fp16 / --memory-efficient-fp16) has "
                                    "no functional twin; the L2T unroll needs an fp32 sgd or adam student")
    return inner


def fairseq_twin(optimizer, names: Dict[torch.Tensor, str], lrs: Sequence[float], clip_norm: float,
                 streams: List[str] = ("",)) -> Tuple[InnerOptimizer, OptState]:
    """The functional optimiser of a fairseq student and its buffers, continuing it exactly.

    Args:
        optimizer: fairseq's optimiser (``FairseqSGD``, ``FairseqAdam``) or its torch optimiser.
        names: ``{parameter: name}`` of every optimised parameter.
        lrs: the learning rate of each unrolled step (the scheduler's rates of those updates).
        clip_norm: ``--clip-norm`` (0: no clipping).
        streams: key prefixes of the stacked students (``"j/"``); the returned buffers and clip
            groups use ``prefix + name`` keys.

    Returns:
        ``(inner optimiser, opt_state)``.

    Raises:
        NoFunctionalTwinError: an optimiser or option without a functional twin.
    """
    inner = _inner_torch_optimizer(optimizer)
    if type(inner).__module__ == "fairseq.optim.adam" and type(inner).__name__ == "Adam":
        group = _group(inner)  # one set of hyper-parameters, as torch's twins
        if group.get("amsgrad", False):
            raise NoFunctionalTwinError("fairseq Adam with amsgrad has no functional twin; expected amsgrad=False")
        params = [p for g in inner.param_groups for p in g["params"]]
        steps = {int(inner.state[p]["step"]) if "step" in inner.state.get(p, {}) else 0 for p in params}
        if len(steps) != 1:
            raise NoFunctionalTwinError(f"Adam parameters have taken different numbers of steps {sorted(steps)}")
        twin = FairseqAdamTwin(lr=list(lrs), betas=tuple(group["betas"]), eps=group["eps"],
                               weight_decay=group["weight_decay"], first_step=steps.pop())
        state = {key: {names[p]: (inner.state[p][key].detach().clone() if key in inner.state.get(p, {})
                                  else torch.zeros_like(p.detach())) for p in params}
                 for key in ("exp_avg", "exp_avg_sq")}
    else:  # torch.optim.SGD; anything else is refused there
        try:
            twin, state = functional_twin(inner, names, lr=list(lrs))
        except NoFunctionalTwinError as err:
            raise NoFunctionalTwinError(f"{err}; translation_l2t unrolls the student's own optimiser, which "
                                        "must be fairseq's --optimizer sgd or adam") from None
    state = {key: {f"{s}{n}": t.clone() for s in streams for n, t in buffers.items()} for key, buffers in state.items()}
    if clip_norm > 0:
        twin = ClippedTwin(twin, float(clip_norm), tuple(tuple(f"{s}{n}" for n in names.values()) for s in streams))
    return twin, state

