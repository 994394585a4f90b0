"""Episode starts along a cross-entropy run (``teacher.episode_starts=ce_trajectory``; issue 16).

Fresh initialisations (the slides) show the teacher only the first T updates of a run, and the
deployed teacher then extrapolates over the rest. With ``ce_trajectory`` phase (a) first trains
a cross-entropy student as the loop would train it (the run's seed, epoch orders, augmentation,
optimiser and lr schedule; loss=ce) and keeps, at every progress point p of
``teacher.trajectory_points``, i.e. after ``u_p = round(p * updates)`` updates of the run:

* the network's state (parameters and buffers),
* the optimiser's state (momentum / Adam moments and step count),
* the student-state tracker (training-NLL EMA, the last epoch end's validation loss and accuracy
  on the whole validation split, as phase (b) reads them).

Teacher step k starts its episode from point ``k mod P`` (cycling through the points in the given
order, so a resumed phase (a) starts each step where the uninterrupted one did): the unroll
continues that student with the functional twin of its optimiser (``hypergrad.functional_twin``:
its moments, its step count, the schedule's rates of updates ``u_p .. u_p + T - 1``), and the
teacher reads ``progress = u_p / updates`` at its first step.

The points are written once to ``teacher_trajectory.pt`` with the settings they depend on; phase
(a) reads them back (a resumed or continued phase (a) does not train the CE student again).
"""

from __future__ import annotations

import copy
import logging
import os
from typing import Dict, List, Sequence

import torch
import torch.nn.functional as F

from fairseq_dynloss.atomic_save import atomic_torch_save
from fairseq_dynloss.file_checks import read_torch_file
from fairseq_dynloss.losses import PhiError
from fairseq_dynloss.teacher import StudentStateTracker

from .registry import ConfigError, build_net
from .schedule import build_scheduler

log = logging.getLogger("dynloss-train")

TRAJECTORY_FILE = "teacher_trajectory.pt"
EPISODE_STARTS = ("fresh", "ce_trajectory")


def check_trajectory_config(t) -> None:
    """``teacher.episode_starts`` and ``teacher.trajectory_points`` (ConfigError naming the value)."""
    starts = t.get("episode_starts", "fresh")
    if starts not in EPISODE_STARTS:
        raise ConfigError(f"teacher.episode_starts={starts!r}; expected one of {list(EPISODE_STARTS)}")
    if starts == "fresh":
        return
    if t.mode != "episodic":
        raise ConfigError(f"teacher.episode_starts={starts} chooses where phase (a)'s episodes start; it needs "
                          f"teacher.mode=episodic (got {t.mode})")
    points = t.get("trajectory_points")
    values = list(points) if points is not None and not isinstance(points, (str, bytes)) and hasattr(
        points, "__iter__") else None
    if not values or not all(isinstance(p, (int, float)) and not isinstance(p, bool) and 0 <= p < 1 for p in values):
        raise ConfigError(f"teacher.trajectory_points={points!r}; expected a non-empty list of progress points "
                          "in [0, 1) (fractions of the run's updates), e.g. [0, 0.25, 0.5, 0.75]")
    if len(set(values)) != len(values):
        raise ConfigError(f"teacher.trajectory_points={list(values)} repeats a point; list each once")
    if t.horizon is not None:
        raise ConfigError(f"teacher.episode_starts=ce_trajectory continues the CE run on its real time axis; "
                          f"teacher.horizon={t.horizon} must be null")
    if t.inner_optimizer is not None or t.inner_lr is not None:
        raise ConfigError("teacher.episode_starts=ce_trajectory continues the CE run's own optimiser (optim); "
                          "teacher.inner_optimizer and teacher.inner_lr must be null")


def trajectory_updates(points: Sequence[float], total_updates: int) -> List[int]:
    """``u_p = round(p * total_updates)`` of each progress point, in the given order."""
    return [int(round(float(p) * total_updates)) for p in points]


def build_optimizer(optim, params: List[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """The student's ``torch.optim`` optimiser of the ``optim`` config (as the loop builds it)."""
    if optim.name == "sgd":
        return torch.optim.SGD(params, lr=optim.lr, momentum=optim.momentum, weight_decay=optim.weight_decay,
                               nesterov=optim.nesterov)
    if optim.name == "adam":
        return torch.optim.Adam(params, lr=optim.lr, weight_decay=optim.weight_decay)
    raise ConfigError(f"unknown optim {optim.name!r}; valid choices: sgd, adam")


@torch.no_grad()
def _validation(net, split, batch_size: int, device: torch.device):
    """(mean CE loss, accuracy) of ``net`` on the whole ``split`` in eval mode."""
    net.eval()
    loss, correct = 0.0, 0
    for start in range(0, len(split), batch_size):
        images, target = split.batch(torch.arange(start, min(start + batch_size, len(split))))
        logits = net(images.to(device))
        target = target.to(device)
        loss += F.cross_entropy(logits, target, reduction="sum").item()
        correct += int((logits.argmax(1) == target).sum())
    net.train()
    return loss / len(split), correct / len(split)


def train_ce_trajectory(cfg, splits, device: torch.device, total_updates: int) -> List[Dict]:
    """Train the CE student and keep its state at each of ``teacher.trajectory_points``.

    Returns:
        One dict per point, in the given order: ``progress``, ``update`` (u_p), ``net`` (state dict),
        ``optimizer`` (state dict), ``tracker`` (``StudentStateTracker.state_dict``).
    """
    from .loop import epoch_order  # the loop imports l2t, which imports this module

    task, seed = cfg.task, int(cfg.seed)
    points = list(cfg.teacher.trajectory_points)
    updates = trajectory_updates(points, total_updates)
    torch.manual_seed(seed)
    net = build_net(cfg.model, splits.input_shape, splits.num_classes).to(device)
    optimizer = build_optimizer(cfg.optim, list(net.parameters()))
    scheduler = build_scheduler(optimizer, cfg.optim, task.epochs)
    tracker = StudentStateTracker(total_updates, cfg.optim.lr, splits.num_classes)
    kept: Dict[int, Dict] = {}
    update, last = 0, max(updates)
    net.train()
    for epoch in range(task.epochs):
        # The loop's seeding: dropout from the global generator, augmentation from its own.
        torch.manual_seed(seed * 1_000_003 + epoch)
        augment_rng = torch.Generator().manual_seed((seed * 1_000_003 + epoch) * 101)
        order = epoch_order(splits.train.labels, seed, epoch, task.get("m_per_class", 0))
        for batch in order.split(task.batch_size):
            if task.drop_last and batch.numel() < task.batch_size:
                continue
            if update in updates:
                kept[update] = {"net": copy.deepcopy(net.state_dict()),
                                "optimizer": copy.deepcopy(optimizer.state_dict()), "tracker": tracker.state_dict()}
            if update == last:
                return [dict(progress=float(p), update=u, **kept[u]) for p, u in zip(points, updates)]
            images, target = splits.train.batch(batch, augment=True, generator=augment_rng)
            loss = F.cross_entropy(net(images.to(device)), target.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            tracker.observe_train(loss.item())
            update += 1
        scheduler.step()
        tracker.observe_dev(*_validation(net, splits.val, cfg.eval_batch_size, device))
    raise ConfigError(f"teacher.trajectory_points={points} reach update {last}; the run has only {update}")


def trajectory_settings(cfg, settings: Dict) -> Dict:
    """What the CE trajectory depends on: phase (a)'s settings and the run's seed."""
    return {**settings, "seed": int(cfg.seed)}


def load_or_train_trajectory(cfg, splits, device: torch.device, out_dir: str, settings: Dict,
                             total_updates: int) -> List[Dict]:
    """The trajectory points of ``teacher_trajectory.pt`` when it was written with these settings
    (and ``overwrite`` is off), else a new CE run, written there atomically."""
    path = os.path.join(out_dir, TRAJECTORY_FILE)
    wanted = trajectory_settings(cfg, settings)
    if not cfg.overwrite and os.path.exists(path):
        saved = read_torch_file(path, "phase (a) file", PhiError)
        if isinstance(saved, dict) and saved.get("trained_with") == wanted:
            return saved["points"]
        log.info("L2T: %s was written with other settings; training the CE trajectory again", path)
    log.info("L2T: training a CE student for the episode starts at progress %s",
             list(cfg.teacher.trajectory_points))
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        points = train_ce_trajectory(cfg, splits, device, total_updates)
    atomic_torch_save({"trained_with": wanted, "points": points}, path)
    return points


def episode_start(points: List[Dict], episode: int) -> Dict:
    """The trajectory point teacher step ``episode`` starts from (cycling in the given order)."""
    return points[episode % len(points)]

