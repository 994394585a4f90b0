"""One L2T-DLF teacher step (Algorithm 1 of the slides), framework-free.

Given the student's parameters omega_0, T training batches and a development objective, the
student is unrolled T functional steps under the dynamic loss with ``Phi_t = mu_theta(s_t)``;
the hypergradient d M~(omega_T) / d theta (``fairseq_dynloss.hypergrad``) then drives an Adam
step on theta, with gradient-norm clipping and a skip when it is not finite (long unrolls are
chaotic; docs/design.md §3.3). A student whose state features become non-finite during the unroll (it
diverged) skips the step the same way, whatever the unroll length.
"""

import math
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Union

import torch
from torch.func import functional_call

from ..hypergrad import SGD, Adam, hypergradient
from .models import Teacher
from .state import NonFiniteStateError

# student_loss(params, phi_tensors, batch) -> scalar (mean loss of one training batch)
StudentLoss = Callable[[Dict[str, torch.Tensor], Dict[str, torch.Tensor], object], torch.Tensor]
# dev_objective(params) -> scalar to MAXIMISE (e.g. expected token accuracy)
DevObjective = Callable[[Dict[str, torch.Tensor]], torch.Tensor]
# live_features(t, omega_t) -> (F,) state features read from the unrolled student itself
LiveFeatures = Callable[[int, Dict[str, torch.Tensor]], torch.Tensor]


@dataclass
class TeacherStepResult:
    """Outcome of one teacher step.

    Attributes:
        dev_objective: M~(omega_T) before the teacher update.
        grad_norm: norm of the hypergradient d M~ / d theta (before clipping); nan if not finite.
        skipped: True when the hypergradient was not finite and theta was left unchanged.
        inner_losses: (T,) student losses along the unroll.
        penalty: value of the ``penalty`` term of the step (0 without one).
    """

    dev_objective: float
    grad_norm: float
    skipped: bool
    inner_losses: torch.Tensor
    penalty: float = 0.0


def inner_optimizer(name: str, lr: float, momentum: float = 0.0):
    """The functional optimiser of the unrolled student (``sgd`` or ``adam``)."""
    if not (lr > 0 and math.isfinite(lr)):  # NaN would skip every teacher step silently
        raise ValueError(f"inner learning rate {lr}; expected a finite number > 0")
    if name == "sgd":
        return SGD(lr=lr, momentum=momentum)
    if name == "adam":
        return Adam(lr=lr)
    raise ValueError(f"unknown inner optimizer {name!r}; expected 'sgd' or 'adam'")


class TeacherLearner:
    """Trains a teacher by hypergradients through unrolled student updates.

    Args:
        teacher: the teacher mu_theta.
        lr: Adam learning rate on theta.
        clip_norm: clip the hypergradient to this norm (0: no clipping).
        optimizer: functional inner optimiser of the student (``inner_optimizer(...)``).
        checkpoint_every: hypergradient memory policy (None: keep all; k; "sqrt").
        truncate: differentiate through the last K steps only (None: all).
        reduce_grads: averages the hypergradients in place across data-parallel workers
            (None: single process).
    """

    def __init__(self, teacher: Teacher, lr: float = 1e-3, clip_norm: float = 1.0, optimizer=None,
                 checkpoint_every=None, truncate: Optional[int] = None,
                 reduce_grads: Optional[Callable[[List[torch.Tensor]], None]] = None):
        if not (lr > 0 and math.isfinite(lr)):
            raise ValueError(f"teacher learning rate {lr}; expected a finite number > 0")
        if not (clip_norm >= 0 and math.isfinite(clip_norm)):  # negative: silently no clipping
            raise ValueError(f"hypergradient clip norm {clip_norm}; expected a finite number >= 0 (0: off)")
        self.teacher = teacher
        self.clip_norm = clip_norm
        self.inner = optimizer if optimizer is not None else SGD(lr=0.1)
        self.checkpoint_every = checkpoint_every
        self.truncate = truncate
        self.reduce_grads = reduce_grads
        self.optimizer = torch.optim.Adam(teacher.parameters(), lr=lr)

    def step(self, student_loss: StudentLoss, dev_objective: DevObjective, params: Dict[str, torch.Tensor],
             batches: Sequence, features: Union[torch.Tensor, LiveFeatures],
             penalty: Optional[Callable[[Teacher], torch.Tensor]] = None, opt_state=None,
             optimizer=None) -> TeacherStepResult:
        """One teacher update.

        Args:
            student_loss: loss of one training batch given params and Phi tensors.
            dev_objective: smoothed development metric of params (maximised).
            params: omega_0 (detached tensors; not modified).
            batches: the T training batches of the unroll.
            features: (T, F) student-state features s_t for each inner step, or a function
                ``features(t, omega_t) -> (F,)`` reading them from the unrolled student (given
                detached weights: s_t is an input of the teacher, no gradient flows through it).
                It is called again when a step is recomputed, so it must return the same s_t.
            penalty: optional scalar to minimise that depends on theta directly, not through the
                student (e.g. the distance of Phi_t from the identity); its gradient is added to
                the hypergradient before averaging across workers and clipping.
            opt_state: the student optimiser's buffers at omega_0 (a live student's moments);
                None: zeros (a fresh student).
            optimizer: the functional optimiser of this unroll (None: the learner's own), e.g. the
                live student's optimiser at its current step and schedule.
        """
        if len(batches) < 1:
            raise ValueError("a teacher step needs T >= 1 training batches; got 0")
        live = callable(features)
        if not live and features.shape[0] != len(batches):
            raise ValueError(f"got {features.shape[0]} state feature rows for {len(batches)} batches")
        theta = {name: p.detach() for name, p in self.teacher.named_parameters()}

        def inner_loss(omega, hparams, batch, step):
            s_t = features(step, {k: v.detach() for k, v in omega.items()}) if live else features[step]
            phi_tensors = functional_call(self.teacher, hparams, (s_t,))
            return student_loss(omega, phi_tensors, batch)

        if not live and not torch.isfinite(features).all():
            result = None  # a diverged student's recorded features
        else:
            try:
                result = hypergradient(inner_loss, lambda omega: -dev_objective(omega), params, theta,
                                       list(batches), optimizer=optimizer or self.inner,
                                       checkpoint_every=self.checkpoint_every, truncate=self.truncate,
                                       opt_state=opt_state)
            except NonFiniteStateError:  # the unrolled student diverged: its s_t is not finite
                result = None
        if result is None:
            dev, inner_losses, finite = float("nan"), torch.full((len(batches),), float("nan")), False
        else:
            dev, inner_losses, finite = -float(result.outer_loss), result.inner_losses, result.finite
        if not finite and self.reduce_grads is None:
            return TeacherStepResult(dev, float("nan"), True, inner_losses)
        self.optimizer.zero_grad(set_to_none=True)
        for name, p in self.teacher.named_parameters():
            # Data-parallel: a rank with a non-finite hypergradient still joins the all-reduce
            # (with NaNs, which spread), so that every rank skips the step together instead of
            # the others waiting forever in the collective.
            p.grad = (result.grads[name].to(p.dtype).clone() if finite
                      else torch.full_like(p, float("nan")))
        penalty_value = 0.0
        if penalty is not None and finite:
            value = penalty(self.teacher)
            params = list(self.teacher.parameters())
            for p, g in zip(params, torch.autograd.grad(value, params, allow_unused=True)):
                if g is not None:
                    p.grad.add_(g)
            penalty_value = float(value.detach())
        grads = [p.grad for p in self.teacher.parameters()]
        if self.reduce_grads is not None:
            self.reduce_grads(grads)
        norm = float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])))
        if not math.isfinite(norm):  # some rank's hypergradient was not finite: all skip
            self.optimizer.zero_grad(set_to_none=True)
            return TeacherStepResult(dev, float("nan"), True, inner_losses)
        if self.clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.teacher.parameters(), self.clip_norm)
        self.optimizer.step()
        return TeacherStepResult(dev, norm, False, inner_losses, penalty_value)

    def state_dict(self) -> Dict:
        return {"teacher": self.teacher.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: Dict) -> None:
        self.teacher.load_state_dict(state["teacher"])
        self.optimizer.load_state_dict(state["optimizer"])
