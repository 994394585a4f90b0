"""Reading a finished ``dynloss-train`` run folder: the best-validation epoch and its cost."""

from __future__ import annotations

import csv
import os
from typing import Dict, List


def best_val_row(metrics_csv: str, metric: str) -> Dict[str, float]:
    """The epoch row with the best validation ``metric`` (first on ties), as floats.

    The test columns of that row are what a study reports: the epoch is chosen on validation
    only."""
    with open(metrics_csv) as handle:
        rows = [{k: float(v) for k, v in row.items() if v not in ("", None)}
                for row in csv.DictReader(handle)]
    if not rows:
        raise ValueError(f"{metrics_csv} has no epochs")
    lower = metric == "error"
    key = lambda row: row[f"val_{metric}"] if lower else -row[f"val_{metric}"]
    return min(rows, key=key)


def best_val_accuracy(run_dir: str, split: str) -> float:
    """Accuracy % on ``split`` (``"val"`` for tuning, ``"test"`` for a reported number) at the
    run's best-validation epoch: the one selection rule of the study and the tuning scripts."""
    if split not in ("val", "test"):
        raise ValueError(f"split {split!r}: expected 'val' or 'test'")
    return 100.0 - best_val_row(os.path.join(run_dir, "metrics.csv"), "error")[f"{split}_error"]


def _seconds(rows: List[Dict[str, str]]) -> float:
    """The rows' CPU seconds (``cpu_time``) when every row has them, else their wall seconds
    (``time``; runs made before the trainer recorded CPU time). CPU time is what an idle machine's
    wall clock would read for the study's single-threaded jobs: a time ratio of wall clocks moves
    with the machine's load (a clean MNIST-1D table once read 12.9x CE for L2T where the CPU
    ratio is 2.4x)."""
    if rows and all(row.get("cpu_time") not in (None, "") for row in rows):
        return sum(float(row["cpu_time"]) for row in rows)
    return sum(float(row.get("time") or 0.0) for row in rows)


def training_seconds(run_dir: str) -> float:
    """A run's training time: its epochs' CPU time (``cpu_time``; wall ``time`` for older runs),
    which includes the ALA controller's and an online teacher's work. Not the process's time:
    on small tasks, start-up (imports) outweighs a whole run."""
    with open(os.path.join(run_dir, "metrics.csv")) as handle:
        return _seconds(list(csv.DictReader(handle)))


def teacher_seconds(run_dir: str) -> float:
    """Time of an L2T run's separate teacher-training phase (episodic mode: ``teacher_log.csv``,
    one row per teacher ``step``; CPU time as ``training_seconds``); 0 when the run has none.

    An online teacher has no separate phase: its steps run between the student's updates, inside
    the epochs that ``training_seconds`` times. Its log (one row per teacher step, keyed by the
    student ``update`` it ran at) is not added again: that double-counted the online teacher,
    in wall seconds, and read 8.9-15.6x CE where the whole run costs ~5x (issue 16)."""
    path = os.path.join(run_dir, "teacher_log.csv")
    if not os.path.exists(path):
        return 0.0
    with open(path) as handle:
        rows = list(csv.DictReader(handle))
    if rows and "update" in rows[0] and "step" not in rows[0]:  # trainer/l2t_online.py's log
        return 0.0
    return _seconds(rows)


def run_summary(run_dir: str, metric: str = "error") -> dict:
    """What a study reports of a finished run, small enough to archive (``jobs.Job.summary``):
    the best-validation epoch's validation and test values of ``metric`` and the run's training
    and teacher-training seconds (``training_seconds``, ``teacher_seconds``)."""
    row = best_val_row(os.path.join(run_dir, "metrics.csv"), metric)
    return {"epoch": int(row["epoch"]), f"val_{metric}": row[f"val_{metric}"],
            f"test_{metric}": row[f"test_{metric}"],
            "training_seconds": training_seconds(run_dir),
            "teacher_seconds": teacher_seconds(run_dir)}
