"""Training throughput (images/s) of dynloss-train's loop against a bare PyTorch loop.

Same model, initialisation, data, batch size, optimiser and example order in one process; the
trainer's own per-epoch ``time`` column (training phase only, no evaluation) against the
timed bare loop. Writes a Markdown table (default ``docs/benchmarks_trainer.md``).

    OMP_NUM_THREADS=1 python scripts/bench_trainer.py --models mlp lenet resnet8 --epochs 5 --repeats 5

``--clock cpu`` times both sides with this thread's CPU clock (``bench_clock.py``): on a shared
machine the wall clock's ratio moves with the load.

The best-of-N ratio of whole runs still moves by +-0.05 between runs of the same code on this
VM. The ``per-update`` column is steadier: every ``optimizer.step`` of both sides is time-stamped
with the same clock, and the median of the intervals between consecutive updates inside an epoch
(pooled over the N runs; the interval spanning an epoch's evaluation is left out) gives the
cost of one update; its ratio bare / trainer is the throughput ratio per update.

Models named ``mnist1d_*`` run on task=mnist1d (3500 training signals, batch 100), the others on
task=digits (1077 images, batch 64).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import sys
import tempfile
from typing import List

import numpy as np
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_module

from bench_clock import CLOCKS, clock, now
from fairseq_dynloss.trainer import train
from fairseq_dynloss.trainer.loop import Student, epoch_order
from fairseq_dynloss.trainer.registry import build_net, build_objective, build_splits


@contextlib.contextmanager
def step_stamps(kind: str, stamps: List[float]):
    """Append the ``kind`` clock to ``stamps`` after every ``optimizer.step`` of SGD (both sides)."""
    step, tick = torch.optim.SGD.step, now(kind)

    def stamped(self, *args, **kwargs):
        result = step(self, *args, **kwargs)
        stamps.append(tick())
        return result

    torch.optim.SGD.step = stamped
    try:
        yield
    finally:
        torch.optim.SGD.step = step


def within_epoch_intervals(stamps: List[float], per_epoch: int) -> np.ndarray:
    """Seconds between consecutive updates of the same epoch (the epoch boundary left out)."""
    intervals = np.diff(np.asarray(stamps))
    index = np.arange(1, len(stamps))  # interval i ends at update i (0-based)
    return intervals[index % per_epoch != 0]


def trainer_images_per_second(cfg, kind: str = "wall") -> float:
    with tempfile.TemporaryDirectory() as folder, clock(kind):
        history = train(cfg, folder)
    seen = sum(len(build_splits(cfg.task, cfg.data_dir).train) for _ in history)
    return seen / sum(row["time"] for row in history)


def bare_images_per_second(cfg, kind: str = "wall") -> float:
    """The loop a researcher would write by hand: pre-normalised tensors, no logging, an
    (untimed) test-error pass after each epoch."""
    torch.manual_seed(cfg.seed)
    splits = build_splits(cfg.task, cfg.data_dir)
    net = build_net(cfg.model, splits.input_shape, splits.num_classes)
    model = Student(net, build_objective(cfg.loss, splits.num_classes, net.feature_dim)).net
    images, labels = splits.train.batch(torch.arange(len(splits.train)))
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.optim.lr, momentum=cfg.optim.momentum,
                                weight_decay=cfg.optim.weight_decay)
    model.train()
    elapsed, seen = 0.0, 0
    for epoch in range(cfg.task.epochs):
        order = epoch_order(labels, cfg.seed, epoch, 0)
        started = now(kind)()
        for idx in order.split(cfg.task.batch_size):
            loss = F.cross_entropy(model(images[idx]), labels[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        elapsed += now(kind)() - started
        seen += len(order)
        # Untimed, as in the trainer: a real loop evaluates between epochs, and skipping it
        # would hand the bare loop warm caches at the start of every epoch.
        model.eval()
        with torch.no_grad():
            for split in (splits.val, splits.test):
                if split is not None:
                    val_images, val_labels = split.batch(torch.arange(len(split)))
                    (model(val_images).argmax(1) != val_labels).float().mean().item()
        model.train()
    return seen / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["mlp", "lenet", "resnet8"])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5, help="best of N for each side")
    parser.add_argument("--out", default="docs/benchmarks_trainer.md")
    parser.add_argument("--clock", choices=CLOCKS, default="wall",
                        help="wall seconds, or this thread's CPU seconds (robust on a shared machine)")
    args = parser.parse_args()

    rows = []
    for name in args.models:
        with initialize_config_module("fairseq_dynloss.trainer.conf", version_base="1.3"):
            task = ["task=mnist1d", "task.max_steps=null"] if name.startswith("mnist1d_") \
                else ["task=digits"]
            cfg = compose("dynloss_train", overrides=[
                f"model={name}", *task, "loss=ce", f"task.epochs={args.epochs}",
                "optim.schedule=constant", "device=cpu", "progress=true", "plot_every=100000"])
        # Interleaved, best of N: a shared machine's load hits both sides alike.
        trainer_runs, bare_runs = [], []
        per_epoch = math.ceil(len(build_splits(cfg.task, cfg.data_dir).train) / cfg.task.batch_size)
        intervals = {"trainer": [], "bare": []}
        for _ in range(args.repeats):
            for side, runs, measure in (("trainer", trainer_runs, trainer_images_per_second),
                                        ("bare", bare_runs, bare_images_per_second)):
                stamps: List[float] = []
                with step_stamps(args.clock, stamps):
                    runs.append(measure(cfg, args.clock))
                intervals[side].append(within_epoch_intervals(stamps, per_epoch))
        trainer, bare = max(trainer_runs), max(bare_runs)
        update = {side: float(np.median(np.concatenate(v))) for side, v in intervals.items()}
        rows.append((f"{name} ({cfg.task.name})", bare, trainer, trainer / bare,
                     update["bare"] / update["trainer"]))
        print(f"{name}: median update bare {update['bare'] * 1e6:.0f} us, trainer "
              f"{update['trainer'] * 1e6:.0f} us, per-update ratio {rows[-1][-1]:.3f}")
        print(f"{name}: bare {bare:.0f} img/s, trainer {trainer:.0f} img/s, ratio {trainer / bare:.3f}"
              f"  (runs: bare {' '.join(f'{v:.0f}' for v in bare_runs)}; "
              f"trainer {' '.join(f'{v:.0f}' for v in trainer_runs)})")

    command = "OMP_NUM_THREADS=" + os.environ.get("OMP_NUM_THREADS", "?") + " python " + " ".join(sys.argv)
    lines = [
        "# dynloss-train throughput vs a bare PyTorch loop", "",
        "Training phase only (no evaluation), task=digits (1077 training images, batch 64) or "
        "mnist1d (3500 training signals, batch 100), "
        f"SGD, {args.epochs} epochs, best of {args.repeats}, {args.clock} clock; same model, data "
        "and example order.",
        f"Target: ratio >= 0.95. Machine: {platform.processor() or platform.machine()}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s).", "",
        f"Command: `{command}`", "",
        "| model (task) | bare loop (img/s) | dynloss-train (img/s) | ratio | per-update ratio |",
        "|---|---:|---:|---:|---:|",
    ] + [f"| {n} | {b:.0f} | {t:.0f} | {r:.3f} | {u:.3f} |" for n, b, t, r, u in rows]
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
