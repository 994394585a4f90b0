"""The training loop of ``dynloss-train``: one linear function, phases commented.

Data-parallel semantics: every rank draws the same global order for an epoch (seeded by
``seed`` and the epoch, as ``DistributedSampler`` does), cuts it into global batches of
``task.batch_size`` and trains on its contiguous slice of each. DDP averages gradients, and the
local loss is scaled by ``world_size * local / global`` examples, so an update equals the
single-process update on the same global batch (models without BatchNorm exactly; BatchNorm
statistics stay per rank). Contiguous slices keep the m-per-class groups of metric learning
intact on each rank.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import time
from pathlib import Path
from typing import Dict, List, Optional

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn
from tqdm import tqdm

from fairseq_dynloss.atomic_save import atomic_write
from fairseq_dynloss.controllers import gather_transitions
from fairseq_dynloss.controllers.health import ALAHealth
from fairseq_dynloss.controllers.targets import PairTarget
from fairseq_dynloss.csv_rows import write_rows
from fairseq_dynloss.data.label_noise import record_label_noise
from fairseq_dynloss.metrics.classification import aucpr_one_vs_rest, error_rate
from fairseq_dynloss.metrics.retrieval import recall_at_k

from . import distributed, run_dir
from .ala import ALATrainerController, check_ala_config, check_ala_world, steps_per_epoch
from .checkpoint import map_tensors, save_checkpoint
from .interrupt import StopRequest, TrainingInterrupted, epoch_position, restore_position
from .log_plots import plot_run_logs
from .l2t import check_l2t_config, setup_l2t
from .plots import plot_curves, plot_phi
from .registry import ConfigError, build_net, build_objective, build_splits
from .run_log import log_tensorboard, open_tensorboard
from .schedule import build_scheduler
from .validate import check_config_values

log = logging.getLogger("dynloss-train")

LOWER_IS_BETTER = ("error",)
PHI_SNAPSHOTS = 6


class Student(nn.Module):
    """The network and its objective as one module, so that DDP syncs both (L-Softmax owns the
    class weights).

    ``student(images, target)`` -> scalar loss; ``student(images)`` -> logits or embeddings.
    """

    def __init__(self, net: nn.Module, objective: nn.Module):
        super().__init__()
        self.net, self.objective = net, objective

    def forward(self, images: torch.Tensor, target: Optional[torch.Tensor] = None) -> torch.Tensor:
        outputs = self.net(images)
        if target is None:
            return self.objective.predict(outputs)
        return self.objective(outputs, target)


def epoch_order(labels: torch.Tensor, seed: int, epoch: int, m_per_class: int) -> torch.Tensor:
    """The global example order of an epoch: a seeded permutation, or (``m_per_class`` > 0)
    shuffled groups of m examples of one class, for in-batch mining."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    if m_per_class <= 0:
        return torch.randperm(labels.numel(), generator=generator)
    groups = []
    for cls in torch.unique(labels).tolist():
        members = (labels == cls).nonzero().squeeze(1)
        members = members[torch.randperm(members.numel(), generator=generator)]
        groups += [g for g in members.split(m_per_class) if g.numel() == m_per_class]
    order = torch.randperm(len(groups), generator=generator)
    return torch.cat([groups[i] for i in order.tolist()])


@torch.no_grad()
def evaluate(student: Student, dataset, metrics: List[str], batch_size: int,
             device: torch.device) -> Dict[str, float]:
    """Validation loss and ``metrics`` (error, aucpr, recall@k) of a whole split."""
    student.eval()
    outputs, labels, loss_sum = [], [], 0.0
    for start in range(0, len(dataset), batch_size):
        indices = torch.arange(start, min(start + batch_size, len(dataset)))
        images, target = dataset.batch(indices)
        images, target = images.to(device), target.to(device)
        raw = student.net(images)
        loss_sum += student.objective.eval_loss(raw, target).item() * target.numel()
        outputs.append(student.objective.predict(raw).float().cpu())
        labels.append(target.cpu())
    outputs, labels = torch.cat(outputs), torch.cat(labels)
    result = {"loss": loss_sum / labels.numel()}
    for name in metrics:
        if name == "error":
            result[name] = error_rate(outputs, labels)
        elif name == "aucpr":
            result[name] = aucpr_one_vs_rest(outputs, labels)
        elif name.startswith("recall@"):
            k = int(name.split("@")[1])
            result[name] = recall_at_k(outputs, labels, [k]).get(k, float("nan"))
        else:
            raise ConfigError(f"unknown metric {name!r}; valid: error, aucpr, recall@K")
    return result


def _better(value: float, best: Optional[float], metric: str) -> bool:
    if best is None or math.isnan(best):
        return not math.isnan(value)
    return value < best if metric in LOWER_IS_BETTER else value > best


def train(cfg: DictConfig, out_dir: str) -> List[Dict[str, float]]:
    """Train ``cfg.model`` on ``cfg.task`` with ``cfg.loss``; write logs, checkpoints and plots
    into ``out_dir``. Returns the per-epoch history (rank 0; other ranks: an empty list).

    Multi-network ALA (``controller=ala controller.multi_network=true`` under ``torchrun``): every
    process trains its own child with seed ``seed + rank`` into ``out_dir/child<rank>/`` and
    returns that child's history.

    A single process stops at the next update boundary on SIGINT / SIGTERM, writes
    ``checkpoint_last.pt`` (``resume=true`` continues exactly) and raises TrainingInterrupted;
    under ``torchrun`` the signals keep their default effect (the ranks could not agree on the
    update to stop at without a collective per update)."""
    with run_dir.locked(out_dir), \
            StopRequest(enabled=int(os.environ.get("WORLD_SIZE", "1")) == 1) as stop_request:
        return _train(cfg, out_dir, stop_request)


def _train(cfg: DictConfig, out_dir: str, stop_request: StopRequest) -> List[Dict[str, float]]:
    check_config_values(cfg)  # numbers in range, before anything is built or written
    if cfg.teacher.name not in ("none", "l2t"):
        raise ConfigError(f"unknown teacher {cfg.teacher.name!r}; valid choices: none, l2t")
    if cfg.teacher.name == "l2t":
        check_l2t_config(cfg)
    if cfg.controller.name not in ("none", "ala"):
        raise ConfigError(f"unknown controller {cfg.controller.name!r}; valid choices: none, ala")
    if cfg.controller.name == "ala":
        check_ala_config(cfg.controller, cfg.loss)
    threads = cfg.get("threads", 0)
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise ConfigError(f"threads={threads!r}; expected an integer >= 0 (0: torch's default)")
    interval = cfg.checkpoint_interval_s
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not interval >= 0:
        raise ConfigError(f"checkpoint_interval_s={interval!r}; expected seconds >= 0 (0: every epoch)")

    # -- set-up: devices, processes, determinism ------------------------------------------------
    context = distributed.setup(cfg.device)
    if cfg.controller.name == "ala":
        check_ala_world(cfg.controller, context.world_size)
    # Multi-network ALA: one independent child per process -- its own seed, its own run folder
    # child<rank>/, no gradient averaging; only the controllers' experiences are shared (ala.py).
    # Otherwise several processes train one model data-parallel.
    multi = cfg.controller.name == "ala" and context.world_size > 1
    data_parallel = context.world_size > 1 and not multi
    shards = context.world_size if data_parallel else 1
    writes = context.is_main or multi  # this process evaluates and writes a run folder
    seed = cfg.seed + context.rank if multi else cfg.seed
    if multi:
        out_dir = os.path.join(out_dir, f"child{context.rank}")
    if threads:  # floating-point sums differ with the thread count, so results do (recorded)
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    last_path = os.path.join(out_dir, "checkpoint_last.pt")
    # fresh / resume / overwrite decided (a resume's settings checked) before the folder changes
    resume_state = run_dir.prepare(cfg, out_dir, context.device, writes)

    OmegaConf.resolve(cfg)
    config_yaml = OmegaConf.to_yaml(cfg)  # once: it goes into every checkpoint as well
    if writes:
        atomic_write(os.path.join(out_dir, "config.yaml"), lambda tmp: Path(tmp).write_text(config_yaml))

    # -- data, model, objective, optimiser ------------------------------------------------------
    task = cfg.task
    splits = build_splits(task, cfg.data_dir)
    if writes:  # label_noise.csv: the realised noise (a clean run writes nothing)
        record_label_noise(splits, out_dir)
    # A step budget (task.max_steps; MNIST-1D's reference is 8000 updates) is whole epochs with the
    # last one cut short; task.epochs becomes their number, so schedules, L2T and ALA follow it.
    max_steps = task.get("max_steps")
    if max_steps is not None:
        if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
            raise ConfigError(f"task.max_steps={max_steps!r}; expected a number of updates >= 1 "
                              "(or null: task.epochs counts)")
        per_epoch_steps = steps_per_epoch(len(epoch_order(splits.train.labels, seed, 0,
                                                          task.get("m_per_class", 0))),
                                          task.batch_size, task.drop_last)
        task.epochs = math.ceil(max_steps / per_epoch_steps)
    metrics = list(task.metrics)
    select = metrics[0]
    probe = build_objective(cfg.loss, splits.num_classes, 1, task=task)
    num_outputs = splits.num_classes if probe.needs_head else 0
    net = build_net(cfg.model, splits.input_shape, num_outputs)
    objective = build_objective(cfg.loss, splits.num_classes, net.feature_dim, task=task)
    student = Student(net, objective).to(context.device)
    model = student
    if data_parallel:
        model = nn.parallel.DistributedDataParallel(
            student, device_ids=[context.device.index] if context.device.type == "cuda" else None)
    optim = cfg.optim
    params = [p for p in student.parameters() if p.requires_grad]
    if optim.name == "sgd":
        optimizer = torch.optim.SGD(params, lr=optim.lr, momentum=optim.momentum,
                                    weight_decay=optim.weight_decay, nesterov=optim.nesterov)
    elif optim.name == "adam":
        optimizer = torch.optim.Adam(params, lr=optim.lr, weight_decay=optim.weight_decay)
    else:
        raise ConfigError(f"unknown optim {optim.name!r}; valid choices: sgd, adam")
    epochs = task.epochs
    scheduler = build_scheduler(optimizer, optim, epochs)  # one closed form, shared with L2T's unrolls

    # -- ALA controller: acts on the loss's Phi every K updates; multi-network: gathers the
    #    children's experiences into every process's replay memory -----------------------------
    ala = None
    if cfg.controller.name == "ala":
        per_epoch = len(epoch_order(splits.train.labels, seed, 0, task.get("m_per_class", 0)))
        total_updates = epochs * steps_per_epoch(per_epoch, task.batch_size, task.drop_last)
        gather = (lambda transition: gather_transitions(transition, context.device)) if multi else None
        ala = ALATrainerController(cfg.controller, objective, splits.val, total_updates,
                                   context.device, cfg.eval_batch_size, context.rank, gather)

    # -- L2T-DLF teacher: phase (a) trains it (or teacher.path loads it); it sets Phi every update
    l2t = setup_l2t(cfg, splits, objective, context.device, context.world_size, out_dir, net, optimizer) \
        if cfg.teacher.name == "l2t" else None

    # -- resume ---------------------------------------------------------------------------------
    history: List[Dict[str, float]] = []
    position: Optional[Dict] = None
    best: Optional[float] = None
    start_epoch = 0
    track_phi = getattr(objective, "phi", None) is not None and objective.phi.parametrisation == "full"
    phi_snapshots: Dict[int, torch.Tensor] = {}
    if track_phi:
        phi_snapshots[0] = objective.phi.materialize().detach().cpu().clone()
    if cfg.resume:
        state = resume_state  # its settings equal this run's (run_dir.prepare)
        student.load_state_dict(state["student"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch, history, best = state["epoch"], list(state["history"]), state["best"]
        phi_snapshots = {int(k): v.cpu() for k, v in state.get("phi_snapshots", {}).items()}
        position = state.get("position")  # set when the job was interrupted inside an epoch
        if ala is not None:
            ala.load_state_dict(state["controller"])
        if l2t is not None:
            l2t.load_state_dict(state["teacher"])
        log.info("resumed from %s at epoch %d", last_path, start_epoch)
    writer = open_tensorboard(out_dir, cfg.tensorboard) if writes else None
    snapshot_epochs = {round(i * epochs / (PHI_SNAPSHOTS - 1)) for i in range(1, PHI_SNAPSHOTS)}
    if context.is_main:
        n_params = sum(p.numel() for p in student.parameters())
        log.info("%s | %s (%d parameters) | %s | %d train / %d val / %d test | %s x%d | %d threads",
                 task.name, cfg.model.name, n_params, cfg.loss.name, len(splits.train),
                 len(splits.val) if splits.val is not None else 0, len(splits.test),
                 context.device, context.world_size, torch.get_num_threads())

    stop = epochs if cfg.stop_after_epoch is None else min(epochs, cfg.stop_after_epoch)
    # One bar for the whole run (not one per epoch): building and closing a bar costs about as
    # much as a small model's update, and an epoch of digits is only 17 updates.
    bar = tqdm(disable=not (cfg.progress and context.is_main), mininterval=1.0, leave=False,
               unit="upd")
    # DDP needs its wrapper called; a single process calls the parts directly (one module call
    # fewer per update, as a hand-written loop).
    forward = model if data_parallel else lambda x, y: objective(net(x), y)
    on_device = lambda t: t if t.device == context.device else t.to(context.device, non_blocking=True)
    best_path = os.path.join(out_dir, "checkpoint_best.pt")
    best_state: Optional[Dict] = None  # a best epoch's state not written yet
    ala_health = ALAHealth()
    last_saved = time.monotonic()

    def run_state(epochs_done: int) -> Dict:
        """Everything resume=true needs after ``epochs_done`` whole epochs (live tensors)."""
        state = {
            "student": student.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "epoch": epochs_done, "history": list(history),
            "best": best, "config": config_yaml, "phi_snapshots": dict(phi_snapshots),
        }
        if ala is not None:
            state["controller"] = ala.state_dict()
        if l2t is not None:
            state["teacher"] = l2t.state_dict()
        return state

    def write_last(state: Dict) -> None:
        """checkpoint_last.pt, and the pending best epoch (a byte copy when it is this state:
        serialising twice costs twice as much)."""
        nonlocal best_state, last_saved
        save_checkpoint(state, last_path)
        if best_state is state:
            atomic_write(best_path, lambda tmp: shutil.copyfile(last_path, tmp))
        elif best_state is not None:
            save_checkpoint(best_state, best_path)
        best_state, last_saved = None, time.monotonic()

    stop_request.armed = True  # from here on a signal stops at the next update boundary
    for epoch in range(start_epoch, stop):
        # -- one epoch of training: every random draw is seeded by (seed, epoch[, rank]), so a
        #    resumed run replays exactly what the uninterrupted run would have done ------------
        torch.manual_seed(seed * 1_000_003 + epoch)
        augment_rng = torch.Generator().manual_seed((seed * 1_000_003 + epoch) * 101 + context.rank)
        student.train()
        objective.start_epoch(epoch)
        order = epoch_order(splits.train.labels, seed, epoch, task.get("m_per_class", 0))
        global_batches = [b for b in order.split(task.batch_size)
                          if b.numel() >= shards
                          and not (task.drop_last and b.numel() < task.batch_size)]
        if max_steps is not None:  # the budget ends inside the last epoch
            global_batches = global_batches[:max_steps - epoch * per_epoch_steps]
        batch_losses, local_sizes, seen = [], [], 0
        ala_rows_before = len(ala.rows) if ala is not None else 0
        done = 0  # updates of this epoch taken
        if position is not None:  # an interrupted job: replay the rest of its epoch
            done, batch_losses, local_sizes, seen = restore_position(position, augment_rng, context.device)
            ala_rows_before = position.get("ala_rows_before", ala_rows_before)
            position = None
        started, started_cpu = time.perf_counter(), time.process_time()
        bar.total = bar.n + len(global_batches) * (stop - epoch) - done
        bar.set_description(f"epoch {epoch + 1}/{epochs}", refresh=False)
        for batch in global_batches[done:]:
            local = batch if shards == 1 else batch.tensor_split(shards)[context.rank]
            images, target = splits.train.batch(local, augment=True, generator=augment_rng)
            if l2t is not None:  # Phi_t = teacher(s_t) for this update
                l2t.before_update(optimizer.param_groups[0]["lr"], images, target)
            loss = forward(on_device(images), on_device(target))
            optimizer.zero_grad(set_to_none=True)
            # DDP averages gradients over ranks: weight a rank's batch-mean loss by its share of
            # the global batch so that the update is the global-batch mean (weight 1 if even).
            weight = shards * local.numel() / batch.numel()
            (loss if weight == 1.0 else loss * weight).backward()
            optimizer.step()
            if ala is not None:  # every K updates: validation state, reward, policy step, act on Phi
                ala.after_update(student)
            batch_losses.append(loss.detach())  # no .item(): no host sync inside the loop
            local_sizes.append(local.numel())
            seen += batch.numel()
            done += 1
            bar.update()
            if stop_request.requested and done < len(global_batches):
                break
        if stop_request.requested and done < len(global_batches):
            # -- interrupted inside the epoch: checkpoint_last.pt at this update boundary, and the
            #    pending best epoch; the epoch's evaluation and logging happen after resume -----
            state = run_state(epoch)
            state["position"] = epoch_position(done, batch_losses, local_sizes, seen, augment_rng,
                                               context.device, ala_rows_before=ala_rows_before)
            write_last(state)
            if ala is not None:
                ala.write_files(out_dir)
            bar.close()
            raise TrainingInterrupted(stop_request.requested, last_path)
        # The clock stops after the last update, as a hand-written loop's would: the epoch's
        # loss summary below is logging (on CUDA, wait for the queued kernels first).
        if context.device.type == "cuda":
            torch.cuda.synchronize(context.device)
        train_time = time.perf_counter() - started
        # the process's CPU seconds of the same phase: what the wall clock would read on an idle
        # machine for single-threaded work, so a cost ratio survives a loaded machine
        train_cpu_time = time.process_time() - started_cpu
        loss_sum = torch.zeros((), dtype=torch.float64, device=context.device)
        if batch_losses:
            sizes = torch.tensor(local_sizes, dtype=torch.float64, device=context.device)
            loss_sum = (torch.stack(batch_losses).double() * sizes).sum()
        if data_parallel:
            loss_sum = distributed.all_reduce_sum(loss_sum, context)
        train_loss = loss_sum.item() / max(seen, 1)
        lr = optimizer.param_groups[0]["lr"]
        scheduler.step()
        if not math.isfinite(train_loss):
            raise FloatingPointError(f"training loss is {train_loss} at epoch {epoch + 1}; "
                                     "lower optim.lr or check the loss settings")
        if track_phi and (epoch + 1) in snapshot_epochs:
            phi_snapshots[epoch + 1] = objective.phi.materialize().detach().cpu().clone()

        # -- evaluation and logging (rank 0 only, or every child of multi-network ALA; the other
        #    ranks go on to the next epoch) ---------------------------------------------------------
        if not writes:
            continue
        row: Dict[str, float] = {"epoch": epoch + 1, "train_loss": train_loss}
        val = evaluate(student, splits.val, metrics, cfg.eval_batch_size, context.device) \
            if splits.val is not None else {}
        test = evaluate(student, splits.test, metrics, cfg.eval_batch_size, context.device)
        row["val_loss"] = val.get("loss", float("nan"))
        row.update({f"val_{m}": val.get(m, float("nan")) for m in metrics})
        row["test_loss"] = test["loss"]
        row.update({f"test_{m}": test[m] for m in metrics})
        row.update({"lr": lr, "time": train_time, "cpu_time": train_cpu_time})
        if ala is not None:
            row.update(ala.epoch_summary(ala_rows_before))
        if l2t is not None:  # the next updates see this epoch's validation loss and error
            l2t.after_epoch(row)
        history.append(row)
        bar.clear()  # the log line replaces the bar until the next update redraws it
        log.info("epoch %d | train loss %.4f | val loss %.4f | val %s %.3f | test %s %.3f | %.1fs",
                 epoch + 1, train_loss, row["val_loss"], select, row[f"val_{select}"], select,
                 row[f"test_{select}"], train_time)

        # -- checkpoints (atomic), CSV, TensorBoard, plots ----------------------------------------
        # Without a validation split the last epoch is the best (never select on test data).
        improved = _better(row[f"val_{select}"], best, select) if splits.val is not None else True
        if improved:
            best = row[f"val_{select}"] if splits.val is not None else None
        # checkpoint_last.pt is written when checkpoint_interval_s has passed since the last
        # write, and always after a job's last epoch; a best epoch in between is kept in memory
        # (a copy: the live tensors change) and written then. Saving costs a short epoch ~2-3%
        # of its training time (and leaves the next update with cold caches).
        due = (epoch + 1 == stop or time.monotonic() - last_saved >= cfg.checkpoint_interval_s
               or stop_request.requested is not None)
        if due or improved:
            state = run_state(epoch + 1)
            if improved:
                best_state = state if due else map_tensors(lambda t: t.detach().clone(), state)
        if ala is not None:
            ala.write_files(out_dir, final=epoch + 1 == epochs)  # ala_log.csv, ala_controller.pt
            for window_row in ala.rows[ala_rows_before:]:  # once, when the policy stops exploring
                for message in ala_health.check(window_row["update"], float(window_row["entropy"])):
                    log.warning(message)
            target = ala.target  # once, when every controlled Phi entry sits at the clamp
            if isinstance(target, PairTarget) and target.clamp is not None and ala.rows:
                pairs = target.elements
                change = (target.values() - target.origin)[pairs[:, 0], pairs[:, 1]]
                for message in ala_health.check(ala.rows[-1]["update"], values=change,
                                                low=target.clamp[0], high=target.clamp[1]):
                    log.warning(message)
        if due:
            write_last(state)
        write_rows(os.path.join(out_dir, "metrics.csv"), history)
        log_tensorboard(writer, row)
        if (epoch + 1) % cfg.plot_every == 0 or epoch + 1 == stop:
            plot_curves(os.path.join(out_dir, "curves.png"), history, select)
            plot_run_logs(out_dir)  # teacher.png / ala.png: what the teacher or controller did
            if track_phi:
                plot_phi(os.path.join(out_dir, "phi.png"), phi_snapshots)
            if track_phi and ala is not None:  # off-diagonal only: its own colour scale
                plot_phi(os.path.join(out_dir, "phi_offdiag.png"),
                         {e: p - torch.diag(p.diagonal()) for e, p in phi_snapshots.items()},
                         minus_identity=False)
        if stop_request.requested and epoch + 1 < stop:  # signalled at the end of the epoch
            if not due:  # after the checkpoint decision above (evaluation, CSV, plots): save now
                write_last(run_state(epoch + 1))
            bar.close()
            raise TrainingInterrupted(stop_request.requested, last_path)

    bar.close()
    if writer is not None:
        writer.close()
    distributed.teardown(context)
    return history if writes else []
