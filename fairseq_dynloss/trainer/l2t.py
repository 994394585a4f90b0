"""L2T-DLF in the generic trainer (``loss=dynamic teacher=l2t``; docs/design.md §3.2, Algorithm 1).

A run has two phases:

(a) Teacher training (``train_teacher``, episodic as in the paper): ``teacher.steps`` teacher
    steps. Step k re-initialises a student from a seed of its own (``teacher.episode_starts=fresh``;
    ``ce_trajectory``: starts from the state of a CE run at one of ``teacher.trajectory_points``,
    with that run's optimiser moments and schedule, ``l2t_trajectory.py``), unrolls ``teacher.unroll`` (T)
    functional optimiser steps on training batches under the dynamic loss with
    ``Phi_t = teacher(s_t)``, scores the smoothed dev objective ``mean p(y|x)`` (expected accuracy)
    on ``teacher.dev_batches`` validation batches (never the test split) and moves theta by its
    hypergradient (``TeacherLearner``: Adam, clipping, skip when non-finite). s_t is read from the
    unrolled student itself (``UnrollState``). Files: ``teacher_log.csv`` (one row per step),
    ``teacher_checkpoint.pt`` (learner state; an interrupted phase, or one given more steps,
    continues from it), ``teacher.pt`` (``save_teacher``, ``done=True`` once all steps ran) and,
    with ``ce_trajectory``, ``teacher_trajectory.pt`` (the CE run's states at the points).
    A done ``teacher.pt`` trained with the same settings is reused; ``teacher.path`` loads a
    teacher file instead and skips phase (a).
(b) Student training (``TeacherPhi``): the loop's usual training; before every update the frozen
    teacher sets the objective's Phi from the live state (progress = update / all updates, EMA of
    the training NLL, validation loss and accuracy of the last epoch end, lr / optim.lr). One row
    per update goes to ``teacher_states.csv``.

Time in the unroll (``unroll_time``): with ``teacher.horizon`` null (the default) unrolled step t
is update t of the real run -- update ``u_p + t`` for an episode started at trajectory point p --
with its progress, the lr schedule of ``optim`` (which the inner optimiser also follows) and the
validations at real epoch ends, as phase (b) shows them. An integer H instead compresses the whole
run into H unrolled steps (progress t / H, epoch ``t * epochs / H``; fresh starts only).
"""

from __future__ import annotations

import csv
import logging
import math
import os
import time
from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from tqdm import tqdm

from fairseq_dynloss.atomic_save import atomic_torch_save
from fairseq_dynloss.csv_rows import read_complete_rows, write_rows
from fairseq_dynloss.file_checks import read_torch_file
from fairseq_dynloss.hypergrad import SGD, Adam, FunctionalModule, functional_twin
from fairseq_dynloss.losses import PhiError, dynamic_loss
from fairseq_dynloss.metrics.classification import expected_accuracy
from fairseq_dynloss.teacher import (
    STATE_FEATURES, TEACHERS, StudentStateTracker, Teacher, TeacherLearner, build_teacher, load_teacher,
    save_teacher,
)

from .ala import steps_per_epoch
from .l2t_trajectory import (
    build_optimizer, check_trajectory_config, episode_start, load_or_train_trajectory,
)
from .registry import ConfigError, build_net
from .schedule import lr_ratio_at_epoch
from .setting_diff import setting_differences

log = logging.getLogger("dynloss-train")

TEACHER_FILE = "teacher.pt"
LOG_FILE = "teacher_log.csv"
CHECKPOINT_FILE = "teacher_checkpoint.pt"
STATES_FILE = "teacher_states.csv"


def check_l2t_config(cfg) -> None:
    """Validate ``teacher=l2t`` before anything is written (ConfigError naming the value)."""
    t = cfg.teacher
    if cfg.loss.name != "dynamic":
        raise ConfigError(f"teacher=l2t sets the Phi of the dynamic loss; got loss={cfg.loss.name}. "
                          "Use loss=dynamic")
    if cfg.controller.name != "none":
        raise ConfigError(f"teacher=l2t and controller={cfg.controller.name} would both set Phi; "
                          "use one of them")
    if "error" not in cfg.task.metrics:
        raise ConfigError(f"teacher=l2t reads the validation error as a state feature; task.metrics="
                          f"{list(cfg.task.metrics)} must include error")
    for name, low in (("steps", 0), ("unroll", 1), ("dev_batches", 1), ("gates", 1), ("hidden", 1)):
        value = t[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"teacher.{name}={value!r}; expected an integer >= {low}")
    for name in ("horizon", "truncate"):
        value = t[name]
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ConfigError(f"teacher.{name}={value!r}; expected null or an integer >= 1")
    every = t.checkpoint_every
    if every is not None and every != "sqrt" and (isinstance(every, bool) or not isinstance(every, int) or every < 1):
        raise ConfigError(f"teacher.checkpoint_every={every!r}; expected null, 'sqrt' or an integer >= 1")
    if not t.lr > 0:
        raise ConfigError(f"teacher.lr={t.lr}; expected > 0")
    if not t.phi_penalty >= 0:
        raise ConfigError(f"teacher.phi_penalty={t.phi_penalty}; expected >= 0 (0: off)")
    if not t.clip >= 0:
        raise ConfigError(f"teacher.clip={t.clip}; expected >= 0 (0: no clipping)")
    if t.kind not in TEACHERS:
        raise ConfigError(f"teacher.kind={t.kind!r}; expected one of {sorted(TEACHERS)}")
    if t.mode not in ("episodic", "online"):
        raise ConfigError(f"teacher.mode={t.mode!r}; expected episodic or online")
    every = t.online_every
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ConfigError(f"teacher.online_every={every!r}; expected an integer >= 1")
    if t.dev_objective not in ("expected_accuracy", "log_likelihood"):
        raise ConfigError(f"teacher.dev_objective={t.dev_objective!r}; expected expected_accuracy or log_likelihood")
    if t.kind == "lr_scale" and t.mode != "online":
        raise ConfigError("teacher.kind=lr_scale scales the live student's learning rate; it needs teacher.mode=online")
    if t.mode == "online" and (t.inner_optimizer is not None or t.inner_lr is not None):
        raise ConfigError("teacher.mode=online unrolls the student's own optimiser; teacher.inner_optimizer and "
                          "teacher.inner_lr must be null")
    if t.inner_optimizer not in (None, "sgd", "adam"):
        raise ConfigError(f"teacher.inner_optimizer={t.inner_optimizer!r}; expected null (as optim), sgd or adam")
    if t.inner_lr is not None and not t.inner_lr > 0:
        raise ConfigError(f"teacher.inner_lr={t.inner_lr}; expected null (optim.lr) or > 0")
    check_trajectory_config(t)


# -- time: the run's lr schedule and epoch ends, on the real or the compressed axis --------------
def total_updates(cfg, splits) -> int:
    """Student updates of the whole run (what progress = 1 stands for in deployment)."""
    task = cfg.task
    return task.epochs * steps_per_epoch(len(splits.train), task.batch_size, task.drop_last)


def compressed_epoch(step: int, horizon: int, epochs: int) -> int:
    """The epoch of the real run that unrolled step ``step`` stands for (H steps = the whole run)."""
    return min(step * epochs // horizon, epochs - 1)


def unroll_time(cfg, splits) -> Tuple[int, Callable[[int], int]]:
    """``(horizon, epoch_of)`` of an episode's unrolled steps.

    ``teacher.horizon`` null: the real axis -- unrolled step t is update t of the real run
    (progress t / all updates, the epoch of update t, validation at real epoch ends), so the
    teacher sees the features deployment will show it for those updates. An integer H: the
    whole run compressed into H unrolled steps (progress t / H, epoch ``t * epochs / H``).
    """
    epochs, horizon = cfg.task.epochs, cfg.teacher.horizon
    if horizon:
        return horizon, lambda step: compressed_epoch(step, horizon, epochs)
    per_epoch = steps_per_epoch(len(splits.train), cfg.task.batch_size, cfg.task.drop_last)
    return total_updates(cfg, splits), lambda step: min(step // per_epoch, epochs - 1)


def unroll_lr_ratios(cfg, epoch_of: Callable[[int], int], first_update: int = 0) -> List[float]:
    """(T,) lr / peak lr of the unrolled steps (updates ``first_update ..``): ``optim``'s schedule
    at each step's epoch."""
    return [lr_ratio_at_epoch(cfg.optim, epoch_of(first_update + k), cfg.task.epochs)
            for k in range(cfg.teacher.unroll)]


def settings_of(cfg) -> Dict:
    """What phase (a) depends on: a teacher trained with other settings is not reused."""
    plain = lambda section: OmegaConf.to_container(section, resolve=True)
    teacher = {k: v for k, v in plain(cfg.teacher).items() if k not in ("steps", "path")}
    if teacher.get("episode_starts", "fresh") == "fresh":  # the default: teachers trained before
        teacher.pop("episode_starts", None)               # these keys existed stay reusable
        teacher.pop("trajectory_points", None)
    return {"task": plain(cfg.task), "model": plain(cfg.model), "loss": plain(cfg.loss),
            "optim": plain(cfg.optim), "teacher": teacher}


# -- phase (a): one episode -----------------------------------------------------------------------
def episode_data(cfg, splits, episode: int) -> Tuple[int, List, List]:
    """Seed, T training batches and the dev batches of teacher step ``episode``.

    Returns:
        (seed, [(step, images (B, ...), target (B,)) x T], [(images, target) x dev_batches]);
        training batches pass through the split in seeded orders (augmented as in training),
        dev batches are drawn from the validation split.
    """
    seed = int(cfg.teacher.seed) * 1_000_003 + episode
    generator = torch.Generator().manual_seed(seed)
    size, unroll = cfg.task.batch_size, cfg.teacher.unroll
    train = splits.train
    passes = math.ceil(unroll * size / len(train))
    order = torch.cat([torch.randperm(len(train), generator=generator) for _ in range(passes)])
    batches = []
    for t in range(unroll):
        images, target = train.batch(order[t * size:(t + 1) * size], augment=True, generator=generator)
        batches.append((t, images, target))
    dev_order = torch.randperm(len(splits.val), generator=generator)[:cfg.teacher.dev_batches * size]
    dev = [splits.val.batch(chunk) for chunk in dev_order.split(size)]
    return seed, batches, dev


class UnrollState:
    """s_t of an unrolled student, read from the unroll itself with a ``StudentStateTracker``.

    ``observe(t, lprobs, target)`` records the training NLL of step t (once: recomputed steps are
    ignored); ``__call__(t, params)`` gives s_t from the NLLs of steps < t (EMA), the dev statistics
    of the last epoch end (measured on ``params`` = omega_t when one was just passed), progress and
    the lr ratio. s_t is cached, so recomputations see the same one; ``states`` keeps the tracker's
    raw ``StudentState`` of every step.

    Args:
        tracker: the state before step 0 (a fresh student's, or a copy of a live one); advanced
            in place.
        epoch_of: the epoch that unrolled step t belongs to (dev statistics at epoch changes).
        rates: (T,) learning rate of each unrolled step, in the tracker's units (lr / peak lr
            when its peak_lr is 1, as in episodes; the real rate for a live student's copy).
        dev_statistics: ``(params, step) -> (loss, accuracy)`` on the dev batches, no gradient.
    """

    def __init__(self, tracker: StudentStateTracker, epoch_of: Callable[[int], int], rates: List[float],
                 dev_statistics: Callable[[Dict[str, torch.Tensor], int], Tuple[float, float]]):
        self.tracker, self.epoch_of, self.rates = tracker, epoch_of, rates
        self.dev_statistics = dev_statistics
        self.first_update = tracker.num_updates
        self.observed: Dict[int, float] = {}
        self.cache: Dict[int, torch.Tensor] = {}
        self.states: Dict[int, object] = {}

    def observe(self, step: int, lprobs: torch.Tensor, target: torch.Tensor) -> None:
        if step not in self.observed:
            self.observed[step] = F.nll_loss(lprobs.detach().float(), target).item()
            self.tracker.observe_train(self.observed[step])

    def __call__(self, step: int, params: Dict[str, torch.Tensor]) -> torch.Tensor:
        if step in self.cache:
            return self.cache[step]
        if step > 0 and step - 1 not in self.observed:
            raise RuntimeError(f"state of unrolled step {step} asked before step {step - 1} ran")
        update = self.first_update + step
        if step > 0 and self.epoch_of(update) != self.epoch_of(update - 1):
            self.tracker.observe_dev(*self.dev_statistics(params, step))  # an epoch end: validate omega_t
        self.states[step] = self.tracker.state(self.rates[step])
        self.cache[step] = self.tracker.features(self.rates[step]).to(next(iter(params.values())).device)
        return self.cache[step]


def inner_optimizer_of(cfg, lr_ratios: List[float]):
    """The unrolled student's optimiser: ``teacher.inner_optimizer`` or a copy of ``optim``
    (name, momentum, Nesterov, weight decay), at ``lr_ratios`` x its peak rate."""
    t, optim = cfg.teacher, cfg.optim
    name = t.inner_optimizer or optim.name
    peak = t.inner_lr if t.inner_lr is not None else optim.lr
    lrs = [peak * r for r in lr_ratios]
    if t.inner_optimizer is None and name == "sgd":
        return SGD(lr=lrs, momentum=optim.momentum, nesterov=optim.nesterov, weight_decay=optim.weight_decay)
    if t.inner_optimizer is None and name == "adam":
        return Adam(lr=lrs, weight_decay=optim.weight_decay)
    if name == "sgd":
        return SGD(lr=lrs, momentum=t.inner_momentum)
    if name == "adam":
        return Adam(lr=lrs)
    raise ConfigError(f"unknown optim {name!r}; valid choices: sgd, adam")


def build_learner(cfg, teacher: Teacher) -> TeacherLearner:
    """The teacher's learner: Adam on theta, clipping, memory policy (the inner optimiser is
    given per unroll)."""
    t = cfg.teacher
    return TeacherLearner(teacher, lr=t.lr, clip_norm=t.clip, checkpoint_every=t.checkpoint_every,
                          truncate=t.truncate)


def identity_penalty(teacher: Teacher, features: List[torch.Tensor]) -> torch.Tensor:
    """Mean over the s_t of the mean squared distance of Phi_t's tensors from the identity's
    (``matrix``: I, ``diag``: 1, low-rank and bucket tensors: 0): Phi = I is the dynamic loss
    -sigmoid(log p_y), whose minimum is the correct class."""
    total = 0.0
    for s_t in features:
        for name, value in teacher(s_t).items():
            if name == "matrix":
                target = torch.eye(value.shape[0], dtype=value.dtype, device=value.device)
            else:
                target = torch.ones_like(value) if name == "diag" else torch.zeros_like(value)
            total = total + (value - target).pow(2).mean()
    return total / len(features)


def unroll_penalty(weight: float, state: "UnrollState",
                   steps: int) -> Optional[Callable[[Teacher], torch.Tensor]]:
    """The learner's ``penalty`` for ``teacher.phi_penalty``: ``weight`` x the distance of the
    unroll's Phi_t (steps 0..steps-1, their cached s_t) from the identity; None when ``weight``
    is 0 (off)."""
    if weight <= 0:
        return None
    return lambda teacher: weight * identity_penalty(teacher, [state.cache[k] for k in range(steps)])


def unrolled_student_loss(student, objective, state: "UnrollState"):
    """``student_loss(params, phi_tensors, (step, images, target))`` of an unroll: the batch's
    loss under ``objective`` with the teacher's Phi tensors; ``state`` observes the step's
    predictions (the features of the next step)."""

    def student_loss(params, phi_tensors, batch):
        step, images, target = batch
        lprobs = F.log_softmax(student(params, images, step=step), dim=1)
        state.observe(step, lprobs, target)
        return objective_loss(objective, lprobs, target, phi_tensors)

    return student_loss


def objective_loss(objective, lprobs: torch.Tensor, target: torch.Tensor,
                   phi_tensors: Dict[str, torch.Tensor]) -> torch.Tensor:
    """The student's batch-mean loss under ``objective``'s settings with Phi's tensors
    ``phi_tensors`` (a teacher's output): what ``objective(logits, target)`` computes.

    Args:
        lprobs: (N, C) log-probabilities.
        target: (N,) class ids.
    """
    extra = {"form": objective.form} if getattr(objective, "form", None) is not None else {}
    out = dynamic_loss(lprobs, target, objective.phi, scale=objective.scale, nll_weight=objective.nll_weight,
                       label_smoothing=objective.label_smoothing, phi_tensors=phi_tensors, **extra)
    return out.loss / target.numel()


def run_episode(cfg, splits, objective, learner: TeacherLearner, episode: int, device: torch.device,
                start: Optional[Dict] = None):
    """Teacher step ``episode``: a student, T unrolled steps, one update of theta.

    Args:
        start: None for a fresh student; else a point of the CE trajectory
            (``l2t_trajectory.train_ce_trajectory``): the unroll continues that student from its
            update ``start["update"]`` with its optimiser's state, the lr schedule from there on
            and its tracker (progress, training-NLL EMA, last validation).

    Returns:
        (TeacherStepResult, UnrollState of the unroll).
    """
    t = cfg.teacher
    seed, batches, dev = episode_data(cfg, splits, episode)
    batches = [(k, x.to(device), y.to(device)) for k, x, y in batches]
    dev = [(x.to(device), y.to(device)) for x, y in dev]
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)  # the student's initialisation and its dropout masks
        net = build_net(cfg.model, splits.input_shape, splits.num_classes).to(device)
        first_update = 0 if start is None else int(start["update"])
        if start is not None:
            net.load_state_dict(start["net"])
        student = FunctionalModule(net)

        def evaluate(params, step):
            """(N, C) logits of each dev batch, as the student would be evaluated (eval mode)."""
            net.eval()
            try:
                return [(student(params, x, step=step), y) for x, y in dev]
            finally:
                net.train()

        @torch.no_grad()
        def dev_statistics(params, step):
            outputs = evaluate(params, step)
            loss = torch.stack([F.cross_entropy(z, y, reduction="sum") for z, y in outputs]).sum()
            correct = sum(int((z.argmax(1) == y).sum()) for z, y in outputs)
            count = sum(len(y) for _, y in outputs)
            return loss.item() / count, correct / count

        horizon, epoch_of = unroll_time(cfg, splits)
        ratios = unroll_lr_ratios(cfg, epoch_of, first_update)
        tracker = StudentStateTracker(horizon, 1.0, splits.num_classes)
        if start is not None:
            tracker.load_state_dict(start["tracker"])  # at update u_p: progress u_p / horizon
        state = UnrollState(tracker, epoch_of, ratios, dev_statistics)
        inner, opt_state = inner_optimizer_of(cfg, ratios), None
        if start is not None:  # the CE run's optimiser, continued (moments, step count)
            live = build_optimizer(cfg.optim, list(net.parameters()))
            live.load_state_dict(start["optimizer"])
            names = {p: name for name, p in net.named_parameters()}
            inner, opt_state = functional_twin(live, names, lr=[cfg.optim.lr * r for r in ratios])

        student_loss = unrolled_student_loss(student, objective, state)

        def dev_objective(params):
            """Expected accuracy mean p(y|x) of omega_T over the dev batches (maximised)."""
            outputs = evaluate(params, len(batches))
            return torch.stack([expected_accuracy(z, y) * len(y) for z, y in outputs]).sum() / sum(
                len(y) for _, y in outputs)

        net.train()
        result = learner.step(student_loss, dev_objective, student.params(), batches, state,
                              penalty=unroll_penalty(t.phi_penalty, state, len(batches)), opt_state=opt_state,
                              optimizer=inner)
    return result, state


# -- phase (a): the teacher steps, files and reuse --------------------------------------------------
def _teacher_options(cfg) -> Dict:
    return dict(rank=cfg.loss.rank, num_buckets=cfg.loss.num_buckets)


def _load_file(path: str):
    return read_torch_file(path, "phase (a) file", PhiError)  # empty / unreadable / corrupted


def new_teacher(cfg, phi) -> Teacher:
    """An untrained teacher of ``teacher.kind`` for the objective's Phi."""
    t = cfg.teacher
    return build_teacher(t.kind, phi.parametrisation, phi.num_classes, num_gates=t.gates, hidden=t.hidden,
                         seed=int(t.seed), fixed_diagonal=bool(t.fixed_diagonal),
                         form=cfg.loss.get("form", "paper"), **_teacher_options(cfg))


def train_teacher(cfg, splits, objective, device: torch.device, out_dir: str) -> Teacher:
    """Phase (a): the teacher steps (or a done ``teacher.pt`` of the same settings)."""
    t = cfg.teacher
    phi = objective.phi
    settings = settings_of(cfg)
    teacher_path = os.path.join(out_dir, TEACHER_FILE)
    checkpoint_path = os.path.join(out_dir, CHECKPOINT_FILE)
    if splits.val is None or len(splits.val) == 0:
        raise ConfigError("teacher=l2t scores its dev objective on validation data; task.val_size must be > 0")

    if not cfg.overwrite and os.path.exists(teacher_path):
        payload = _load_file(teacher_path)
        config = payload.get("config", {}) if isinstance(payload, dict) else {}
        differences = setting_differences(config.get("trained_with") or {}, settings)
        if differences:
            raise ConfigError(
                f"{teacher_path} was trained with other settings: {', '.join(differences)}; pass "
                "overwrite=true to train a new teacher, or teacher.path to use it as it is")
        if config.get("done") and config.get("teacher_steps") == t.steps:
            log.info("L2T: reusing the finished teacher %s (%d teacher steps)", teacher_path, t.steps)
            return load_teacher(teacher_path, phi.parametrisation, phi.num_classes, **_teacher_options(cfg))

    teacher = new_teacher(cfg, phi).to(device)
    learner = build_learner(cfg, teacher)
    rows: List[Dict] = []
    if not cfg.overwrite and os.path.exists(checkpoint_path):
        state = _load_file(checkpoint_path)
        differences = setting_differences(state["trained_with"], settings)
        if differences:
            raise ConfigError(f"{checkpoint_path} was trained with other settings: {', '.join(differences)}; "
                              "pass overwrite=true to train a new teacher")
        if len(state["rows"]) > t.steps:
            raise ConfigError(f"{checkpoint_path} already holds {len(state['rows'])} teacher steps; "
                              f"teacher.steps={t.steps}. Pass overwrite=true to train a new teacher")
        learner.load_state_dict(state["learner"])
        rows = [dict(row) for row in state["rows"]]
        log.info("L2T: continuing teacher training after %d teacher steps", len(rows))

    horizon = unroll_time(cfg, splits)[0]
    starts = None
    if t.get("episode_starts", "fresh") == "ce_trajectory" and len(rows) < t.steps:
        starts = load_or_train_trajectory(cfg, splits, device, out_dir, settings, total_updates(cfg, splits))
    bar = tqdm(total=t.steps, initial=len(rows), disable=not cfg.progress, leave=False, unit="teacher step")
    for episode in range(len(rows), t.steps):
        started, started_cpu = time.perf_counter(), time.process_time()
        start = None if starts is None else episode_start(starts, episode)
        result, _ = run_episode(cfg, splits, objective, learner, episode, device, start)
        rows.append({"step": episode + 1, "dev_objective": result.dev_objective, "grad_norm": result.grad_norm,
                     "skipped": int(result.skipped), "penalty": result.penalty,
                     "inner_loss_first": result.inner_losses[0].item(),
                     "inner_loss_last": result.inner_losses[-1].item(), "time": time.perf_counter() - started,
                     "cpu_time": time.process_time() - started_cpu})
        if start is not None:
            rows[-1]["start_update"] = start["update"]
        atomic_torch_save({"learner": learner.state_dict(), "rows": rows, "trained_with": settings},
                          checkpoint_path)
        write_rows(os.path.join(out_dir, LOG_FILE), rows)
        save_teacher(teacher, teacher_path, horizon=horizon, teacher_steps=len(rows), done=False,
                     trained_with=settings)
        bar.update()
        bar.set_postfix(dev=f"{result.dev_objective:.4f}", refresh=False)
    bar.close()
    save_teacher(teacher, teacher_path, horizon=horizon, teacher_steps=len(rows), done=True, trained_with=settings)
    if rows:
        k = max(1, len(rows) // 10)
        first = sum(r["dev_objective"] for r in rows[:k]) / k
        last = sum(r["dev_objective"] for r in rows[-k:]) / k
        log.info("L2T: %d teacher steps, dev objective (expected accuracy) %.4f (first %d) -> %.4f (last %d)",
                 len(rows), first, k, last, k)
    return teacher


# -- phase (b): the frozen teacher sets Phi every update ---------------------------------------------
class TeacherPhi:
    """Sets ``objective.phi = teacher(s_t)`` before every student update (phase (b)).

    s_t comes from a ``StudentStateTracker``: the training-NLL EMA is fed by a forward hook on the
    objective (it sees the logits of every training batch); dev statistics come from the loop's
    epoch rows. All state is in ``state_dict`` so a resumed run equals the uninterrupted one.

    Args:
        teacher: the trained (frozen) teacher.
        objective: the ``DynamicObjective`` whose Phi is set.
        total_updates: student updates of the whole run (progress = update / total).
        peak_lr: optim.lr (lr feature = current lr / peak).
        out_dir: where ``teacher_states.csv`` goes.
    """

    def __init__(self, teacher: Teacher, objective, total_updates: int, peak_lr: float, out_dir: str):
        self.teacher = teacher.requires_grad_(False).eval()
        self.objective = objective
        self.phi = objective.phi
        self.device = next(iter(self.phi.tensors().values())).device
        self.teacher.to(self.device)
        self.tracker = StudentStateTracker(max(1, int(total_updates)), float(peak_lr), self.phi.num_classes)
        self.path = os.path.join(out_dir, STATES_FILE)
        self.pending: List[Dict] = []  # rows of teacher_states.csv not yet written
        self.file_synced = False
        objective.register_forward_hook(self._observe)

    @property
    def step(self) -> int:
        return self.tracker.num_updates

    def _observe(self, module, inputs, output) -> None:
        if module.training:  # a training batch (the loop evaluates through eval_loss/predict)
            logits, target = inputs
            self.tracker.observe_train(F.cross_entropy(logits.detach().float(), target).item())

    @torch.no_grad()
    def set_phi(self, features: torch.Tensor) -> None:
        """Phi = teacher(s_t), recorded for ``teacher_states.csv``."""
        self.phi.load_tensors(self.teacher(features.to(self.device)))
        self.pending.append({"update": self.step, **dict(zip(STATE_FEATURES, features.tolist())),
                             **self.phi.statistics()})

    def before_update(self, lr: float, images: Optional[torch.Tensor] = None,
                      target: Optional[torch.Tensor] = None) -> None:
        """Phi_t = teacher(s_t) for the update about to run (lr: the optimiser's current rate;
        the batch is not needed by a frozen teacher)."""
        self.set_phi(self.tracker.features(lr))

    def after_epoch(self, row: Dict[str, float]) -> None:
        """Read the epoch's validation loss and error (the next updates see them), add Phi's
        statistics to the row and write this epoch's states to ``teacher_states.csv``."""
        self.tracker.observe_dev(row.get("val_loss", float("nan")),
                                 1.0 - row.get("val_error", float("nan")) / 100.0)
        row.update(self.phi.statistics())
        self._write(self.pending)
        self.pending = []

    def _write(self, rows: List[Dict]) -> None:
        """Append ``rows``; the first time, drop rows of the file from this run's updates on (a
        resumed run repeats the updates after its checkpoint; a fresh one starts at 0)."""
        if not rows:
            return
        if not self.file_synced:  # rewritten atomically; a row a kill tore is dropped
            kept = []
            if os.path.exists(self.path):
                kept = [r for r in read_complete_rows(self.path) if int(r["update"]) < rows[0]["update"]]
            write_rows(self.path, kept + rows)
            self.file_synced = True
            return
        with open(self.path, "a", newline="") as handle:
            csv.DictWriter(handle, fieldnames=list(rows[-1])).writerows(rows)

    def state_dict(self) -> Dict:
        return {"tracker": self.tracker.state_dict()}

    def load_state_dict(self, state: Dict) -> None:
        self.tracker.load_state_dict(state["tracker"])


def setup_l2t(cfg, splits, objective, device: torch.device, world_size: int, out_dir: str,
              net: Optional[torch.nn.Module] = None, optimizer: Optional[torch.optim.Optimizer] = None) -> TeacherPhi:
    """Phase (a) (or ``teacher.path``), then the phase-(b) hook of the loop; ``teacher.mode=online``:
    no phase (a), a teacher that learns alongside the live student (``net``, ``optimizer``)."""
    if world_size > 1:
        raise ConfigError("teacher=l2t runs in one process; data-parallel L2T is not implemented in this trainer")
    phi = objective.phi
    online = cfg.teacher.mode == "online"
    if cfg.teacher.path:
        path = os.path.expanduser(cfg.teacher.path)
        teacher = load_teacher(path, phi.parametrisation, phi.num_classes, **_teacher_options(cfg))
        log.info("L2T: teacher loaded from %s (phase (a) skipped)", path)
    elif online:
        teacher = new_teacher(cfg, phi).to(device)
    else:
        # Forked: phase (a) leaves the global RNG as a run without a teacher would find it.
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            teacher = train_teacher(cfg, splits, objective, device, out_dir)
    total = total_updates(cfg, splits)
    if not online:
        return TeacherPhi(teacher, objective, total, cfg.optim.lr, out_dir)
    if net is None or optimizer is None:
        raise ConfigError("teacher.mode=online needs the live student network and optimiser")
    if splits.val is None or len(splits.val) == 0:
        raise ConfigError("teacher.mode=online scores its look-ahead on validation data; task.val_size must be > 0")
    from .l2t_online import OnlineTeacher  # l2t_online imports this module

    return OnlineTeacher(cfg, teacher, objective, net, optimizer, splits.val, total, cfg.optim.lr, out_dir)
