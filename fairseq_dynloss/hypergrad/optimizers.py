"""Functional inner optimisers: parameters and optimiser state in, new ones out.

Every update is out-of-place, so the same code runs under ``torch.no_grad`` (the forward sweep
of ``hypergradient``) and inside an autograd graph (the vector-Jacobian product of one step,
and the naive full-graph unroll) with bit-identical arithmetic. The update formulas are those
of ``torch.optim.SGD`` / ``Adam`` / ``AdamW`` (tested against them).

The optimiser state is a dict ``{buffer_name: {param_name: Tensor}}``; for SGD with momentum it
is ``{"momentum": ...}``, for Adam ``{"exp_avg": ..., "exp_avg_sq": ...}``. The step counter of
Adam's bias correction is ``first_step + step + 1`` (``step``: the inner step index), not state:
an unroll that continues a live student's moments passes the updates it has already taken.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Dict, Tuple

import torch
from torch import Tensor

from .schedule import LearningRate, learning_rate_at

Params = Dict[str, Tensor]
OptState = Dict[str, Dict[str, Tensor]]


class InnerOptimizer(ABC):
    """A differentiable optimiser step ``(params, state, grads) -> (params, state)``."""

    lr: LearningRate
    # True when ``update`` applies one formula to every number independently: the engine may
    # then run it on all parameters concatenated (``flat.py``). A per-tensor rule (a norm, a
    # trust ratio) must leave it False.
    elementwise = False

    @property
    @abstractmethod
    def buffer_names(self) -> Tuple[str, ...]:
        """Names of the per-parameter state buffers, in a fixed order."""

    def init_state(self, params: Params) -> OptState:
        """Zero state for ``params`` (the state of ``torch.optim`` before its first step)."""
        return {name: {k: torch.zeros_like(p) for k, p in params.items()} for name in self.buffer_names}

    @abstractmethod
    def update(
        self, params: Params, state: OptState, grads: Params, hparams: Dict[str, Tensor], step: int
    ) -> Tuple[Params, OptState]:
        """One step.

        Args:
            params: ``{name: Tensor}`` current parameters omega_t.
            state: optimiser buffers before the step.
            grads: ``{name: Tensor}`` d inner_loss / d params at omega_t (same shapes).
            hparams: hyper-parameters; used when the learning rate names one.
            step: inner step index t, from 0.

        Returns:
            ``(params, state)`` after the step; new tensors, inputs untouched.
        """


@dataclass(frozen=True)
class SGD(InnerOptimizer):
    """SGD, optionally with (Nesterov) momentum and L2 weight decay, as ``torch.optim.SGD``
    with ``dampening=0``.

    Attributes:
        lr: learning rate or schedule (see ``schedule.py``).
        momentum: momentum factor mu; the buffer is ``b = mu * b + g`` (``b_1 = g``).
        nesterov: use ``g + mu * b`` as the direction instead of ``b``.
        weight_decay: L2 coefficient added to the gradient (``g + wd * w``).
    """

    lr: LearningRate = 0.1
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0

    elementwise = True

    def __post_init__(self):
        if self.momentum < 0:
            raise ValueError(f"SGD momentum must be >= 0, got {self.momentum}")
        if self.weight_decay < 0:
            raise ValueError(f"SGD weight_decay must be >= 0, got {self.weight_decay}")
        if self.nesterov and self.momentum == 0:
            raise ValueError("SGD nesterov=True needs momentum > 0, got momentum=0")

    @property
    def buffer_names(self) -> Tuple[str, ...]:
        return ("momentum",) if self.momentum else ()

    def update(self, params, state, grads, hparams, step):
        # Scales fused into the adds (torch.add(a, b, alpha), as torch.optim.SGD): half the ops and
        # autograd nodes of ``mu * b + g``, and AddBackward saves no tensor. (The per-tensor
        # overhead is cut by the engine running this on all parameters concatenated, flat.py; the
        # multi-tensor torch._foreach_add would instead keep both input lists alive in its
        # backward node: two more state copies per step in a recorded graph.)
        lr = learning_rate_at(self.lr, hparams, step)
        new_params, new_momentum = {}, {}
        for k, p in params.items():
            g = grads[k]
            if self.weight_decay:
                g = torch.add(g, p, alpha=self.weight_decay)
            if self.momentum:
                buf = torch.add(g, state["momentum"][k], alpha=self.momentum)
                new_momentum[k] = buf
                g = torch.add(g, buf, alpha=self.momentum) if self.nesterov else buf
            new_params[k] = p - lr * g if isinstance(lr, Tensor) else torch.add(p, g, alpha=-lr)
        return new_params, ({"momentum": new_momentum} if self.momentum else {})


class _SqrtZeroSafe(torch.autograd.Function):
    """``sqrt`` whose backward is ``grad / (2 sqrt(x))`` where ``x > 0`` and 0 where ``x = 0``
    (autograd's ``SqrtBackward`` formula, masked); the backward is built from differentiable ops
    on the saved root, so it can be differentiated again."""

    @staticmethod
    def forward(x: Tensor) -> Tensor:
        return torch.sqrt(x)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (root,) = ctx.saved_tensors
        positive = root > 0
        safe = torch.where(positive, root, torch.ones_like(root))  # no inf, even in the unused branch
        return torch.where(positive, grad / (2 * safe), torch.zeros_like(grad))


def _sqrt_zero_safe(x: Tensor) -> Tensor:
    """``sqrt(x)`` for ``x >= 0`` whose derivative at 0 is 0 instead of inf.

    Adam's second moment is exactly 0 for a parameter whose gradient has always been 0 (an
    unused embedding row, a dead ReLU); its first moment is then 0 too, so the true contribution
    is 0, but autograd would form ``0 * inf = nan`` there. One op forward (a masked ``where``
    pair would be six per step), and a plain ``sqrt`` when no graph is recorded (the forward
    sweep): the values are the same.
    """
    if torch.is_grad_enabled() and x.requires_grad:
        return _SqrtZeroSafe.apply(x)
    return torch.sqrt(x)


@dataclass(frozen=True)
class Adam(InnerOptimizer):
    """Adam as ``torch.optim.Adam`` (``amsgrad=False``): L2 weight decay added to the gradient.

    Attributes:
        lr: learning rate or schedule (see ``schedule.py``).
        betas: ``(beta1, beta2)`` decay rates of the first and second moments.
        eps: added to the bias-corrected ``sqrt`` of the second moment.
        weight_decay: L2 coefficient (``g + wd * w``; decoupled in ``AdamW``).
        first_step: updates the moments have already seen (``torch.optim.Adam``'s ``state["step"]``
            when the unroll starts); 0 for a fresh student.
    """

    lr: LearningRate = 1e-3
    betas: Tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    first_step: int = 0

    decoupled_weight_decay = False
    elementwise = True

    def __post_init__(self):
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"Adam betas must be two numbers in [0, 1), got {self.betas}")
        if self.eps < 0:
            raise ValueError(f"Adam eps must be >= 0, got {self.eps}")
        if self.weight_decay < 0:
            raise ValueError(f"Adam weight_decay must be >= 0, got {self.weight_decay}")
        if isinstance(self.first_step, bool) or not isinstance(self.first_step, int) or self.first_step < 0:
            raise ValueError(f"Adam first_step must be an integer >= 0, got {self.first_step!r}")

    @property
    def buffer_names(self) -> Tuple[str, ...]:
        return ("exp_avg", "exp_avg_sq")

    def update(self, params, state, grads, hparams, step):
        lr = learning_rate_at(self.lr, hparams, step)
        beta1, beta2 = self.betas
        count = self.first_step + step + 1
        bias_correction1 = 1.0 - beta1 ** count
        bias_correction2_sqrt = math.sqrt(1.0 - beta2 ** count)
        new_params, exp_avg, exp_avg_sq = {}, {}, {}
        for k, p in params.items():
            g = grads[k]
            if self.weight_decay and self.decoupled_weight_decay:
                p = p * (1.0 - lr * self.weight_decay)
            elif self.weight_decay:
                g = g + self.weight_decay * p
            m = beta1 * state["exp_avg"][k] + (1.0 - beta1) * g
            v = beta2 * state["exp_avg_sq"][k] + (1.0 - beta2) * g * g
            denom = _sqrt_zero_safe(v) / bias_correction2_sqrt + self.eps
            new_params[k] = p - (lr / bias_correction1) * m / denom
            exp_avg[k], exp_avg_sq[k] = m, v
        return new_params, {"exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}


@dataclass(frozen=True)
class AdamW(Adam):
    """AdamW as ``torch.optim.AdamW``: decoupled weight decay ``w <- w (1 - lr * wd)``."""

    weight_decay: float = 1e-2

    decoupled_weight_decay = True
