"""Online L2T-DLF (``teacher=l2t teacher.mode=online``): the teacher learns alongside the live
student, AdaLFL / Meta-Weight-Net style.

Every ``teacher.online_every`` updates, before the real update t:

1. s_t is read from the live ``StudentStateTracker`` -- the same tracker, the same s_t, that
   then sets the real update's Phi (training and deployment features agree by construction);
2. the student is unrolled ``teacher.unroll`` look-ahead steps from its live weights with the
   *functional twin* of its real optimiser (same rule, betas, weight decay, current rate, and
   its live momentum / moments, ``hypergrad.functional_twin``) on the current training batch
   (and the ones before it, for look-aheads longer than one step);
3. the teacher's parameters take one Adam step on the hypergradient of a smoothed metric of the
   look-ahead student on a fresh random batch of the *validation* split (never test);
4. Phi_t = teacher(s_t) with the updated teacher, and the real update runs.

Short look-aheads are greedy (short-horizon bias, docs/investigation.md 2c); the controls
``teacher.kind=lr_scale`` and ``teacher.fixed_diagonal=true`` tell a learned loss from a learned
step size. A look-ahead whose student diverges (non-finite state or hypergradient) is skipped.
"""

from __future__ import annotations

import os
import time
from collections import deque
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F

from fairseq_dynloss.csv_rows import write_rows
from fairseq_dynloss.hypergrad import FunctionalModule, functional_twin
from fairseq_dynloss.hypergrad.schedule import LogScaled
from fairseq_dynloss.metrics.classification import expected_accuracy
from fairseq_dynloss.teacher import Teacher, save_teacher

from .l2t import (LOG_FILE, TEACHER_FILE, TeacherPhi, UnrollState, build_learner, unroll_penalty,
                  unrolled_student_loss)

DEV_OBJECTIVES = ("expected_accuracy", "log_likelihood")


def smoothed_dev_metric(name: str, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The development objective to maximise: ``expected_accuracy`` = mean p(y|x), or
    ``log_likelihood`` = mean log p(y|x) (Meta-Weight-Net's validation loss, negated).

    Args:
        logits: (N, C).
        target: (N,).
    """
    if name == "expected_accuracy":
        return expected_accuracy(logits, target)
    if name == "log_likelihood":
        return -F.cross_entropy(logits, target)
    raise ValueError(f"teacher.dev_objective={name!r}; expected one of {list(DEV_OBJECTIVES)}")


class OnlineTeacher(TeacherPhi):
    """Phase (b) with a teacher that keeps learning (see the module docstring).

    Args:
        cfg: the run's config (``teacher``, ``task.batch_size``).
        teacher: the teacher to train (untrained, or loaded from ``teacher.path``).
        objective: the student's ``DynamicObjective``.
        net: the live student network.
        optimizer: the live student's ``torch.optim`` optimiser (needs a functional twin).
        val: the validation split (dev batches are drawn from it).
        total_updates, peak_lr, out_dir: as ``TeacherPhi``.
    """

    def __init__(self, cfg, teacher: Teacher, objective, net: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 val, total_updates: int, peak_lr: float, out_dir: str):
        super().__init__(teacher, objective, total_updates, peak_lr, out_dir)
        self.teacher.requires_grad_(True).train()
        t = cfg.teacher
        self.every, self.unroll, self.dev_name = int(t.online_every), int(t.unroll), str(t.dev_objective)
        self.dev_size = int(t.dev_batches) * int(cfg.task.batch_size)
        self.phi_penalty = float(t.phi_penalty)
        self.learner = build_learner(cfg, self.teacher)
        self.net, self.optimizer, self.val = net, optimizer, val
        self.student = FunctionalModule(net)
        self.names = {p: n for n, p in net.named_parameters()}
        self.recent: deque = deque(maxlen=self.unroll)  # the last training batches, current last
        self.generator = torch.Generator().manual_seed(int(t.seed) * 1_000_003 + 7)
        self.rows: List[Dict] = []
        self.log_path = os.path.join(out_dir, LOG_FILE)
        self.teacher_path = os.path.join(out_dir, TEACHER_FILE)
        # lr_scale teacher: the real rate is the schedule's (base) rate times its multiplier. The
        # base is the group's rate unless that is the rate this hook set last (the scheduler
        # overwrites it at epoch ends).
        self.scales_lr = hasattr(self.teacher, "lr_multiplier")
        self.base_lr: Optional[float] = None
        self.set_lr: Optional[float] = None

    def before_update(self, lr: float, images: Optional[torch.Tensor] = None,
                      target: Optional[torch.Tensor] = None) -> None:
        if images is None or target is None:
            raise ValueError("teacher.mode=online needs the update's batch (images, target)")
        self.recent.append((images.to(self.device), target.to(self.device)))
        if self.scales_lr:
            if self.set_lr is None or lr != self.set_lr:
                self.base_lr = lr
            lr = self.base_lr
        if self.step % self.every == 0:
            self.teacher_step(lr)
        super().before_update(lr)
        if self.scales_lr:
            self.set_lr = lr * float(self.teacher.lr_multiplier())
            for group in self.optimizer.param_groups:
                group["lr"] = self.set_lr

    def teacher_step(self, lr: float):
        """One look-ahead hypergradient step of the teacher from the live student (steps 1-3)."""
        started = time.perf_counter()
        dev_index = torch.randperm(len(self.val), generator=self.generator)[:self.dev_size]
        x_dev, y_dev = (v.to(self.device) for v in self.val.batch(dev_index))
        batches = [(k, x, y) for k, (x, y) in enumerate(self.recent)]
        rates = [lr] * len(batches)
        twin, opt_state = functional_twin(self.optimizer, self.names,
                                          lr=LogScaled(rates, "log_lr_scale") if self.scales_lr else rates)
        state = UnrollState(self.tracker.copy(), lambda update: 0, rates, dev_statistics=None)
        student, objective, net = self.student, self.objective, self.net

        student_loss = unrolled_student_loss(student, objective, state)

        def dev_objective(params):
            net.eval()
            try:
                return smoothed_dev_metric(self.dev_name, student(params, x_dev), y_dev)
            finally:
                net.train()

        params = {n: p.detach() for n, p in net.named_parameters()}
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            result = self.learner.step(student_loss, dev_objective, params, batches, state,
                                       penalty=unroll_penalty(self.phi_penalty, state, len(batches)),
                                       opt_state=opt_state, optimizer=twin)
        self.rows.append({"update": self.step, "dev_objective": result.dev_objective,
                          "grad_norm": result.grad_norm, "skipped": int(result.skipped),
                          "inner_loss_first": result.inner_losses[0].item(),
                          "time": time.perf_counter() - started})
        return result, state

    def after_epoch(self, row: Dict[str, float]) -> None:
        super().after_epoch(row)
        write_rows(self.log_path, self.rows)
        save_teacher(self.teacher, self.teacher_path, horizon=self.tracker.horizon, teacher_steps=len(self.rows),
                     done=True)
        if self.scales_lr:
            row["lr_multiplier"] = float(self.teacher.lr_multiplier())
        done = [r for r in self.rows if not r["skipped"]]
        if done:
            row["teacher_dev_objective"] = sum(r["dev_objective"] for r in done[-20:]) / len(done[-20:])

    def state_dict(self) -> Dict:
        # The look-ahead of the next update also unrolls the unroll - 1 batches before it, so a
        # resumed run needs them (without them resume was not exact for teacher.unroll > 1).
        return {**super().state_dict(), "learner": self.learner.state_dict(), "rows": list(self.rows),
                "generator": self.generator.get_state(), "base_lr": self.base_lr, "set_lr": self.set_lr,
                "recent": [(x.cpu(), y.cpu()) for x, y in self.recent]}

    def load_state_dict(self, state: Dict) -> None:
        super().load_state_dict(state)
        self.learner.load_state_dict(state["learner"])
        self.rows = list(state["rows"])
        self.generator.set_state(state["generator"])
        self.base_lr, self.set_lr = state["base_lr"], state["set_lr"]
        self.recent = deque(((x.to(self.device), y.to(self.device)) for x, y in state["recent"]),
                            maxlen=self.unroll)
