"""The study's ``mnist1d_reference`` part: does CE on our MNIST-1D reproduce the reference code?

Before any loss is judged on MNIST-1D, the benchmark itself must match Greydanus (2020): the
reference models trained with CE on the public set (4000 train / 1000 test, data seed 42) under
the reference schedule (Adam 1e-2, batch 100, 8000 updates, no validation split), test accuracy
after the last update. The issue's bar: every model within ``TOLERANCE`` points of the published
accuracy over the seeds. The published MLP number (68 %) is above what the reference code's own
notebooks log on the same data (64.6 and 65.1 %), so both are shown.
"""

from __future__ import annotations

import csv
import math
import os
from typing import Dict, List

from .jobs import Job, summary_of
from .mnist1d import train_command
from .stats import summarize

MODELS = ("mnist1d_mlp", "mnist1d_cnn", "mnist1d_gru")
STEPS = 8000
LR = 1e-2
SEEDS = 5
TOLERANCE = 3.0  # points of test accuracy
# Published test accuracy % (the mnist1d README's table) and what the reference code's own
# notebooks log (seed 42, 6000 steps; greydanus/mnist1d notebooks/quickstart.ipynb and
# mnist1d-classification.ipynb).
PUBLISHED = {"mnist1d_mlp": 68.0, "mnist1d_cnn": 94.0, "mnist1d_gru": 91.0}
REFERENCE_LOGS = {"mnist1d_mlp": "64.6, 65.1", "mnist1d_cnn": "92.3, 92.3",
                  "mnist1d_gru": "92.1, 89.1"}
OVERRIDES = ["loss=ce", "task.val_size=0"]  # the whole 4000-sample training split


def run_dir(work: str, model: str, seed: int) -> str:
    return os.path.join(work, "mnist1d_reference", f"{model}_seed{seed}")


def job_name(model: str, seed: int) -> str:
    return f"mnist1d_reference_{model}_seed{seed}"


def jobs(seeds: List[int], work: str, python: str, env: Dict[str, str]) -> List[Job]:
    """One CE run per (model, seed) under the reference schedule."""
    out = []
    for model in MODELS:
        for seed in seeds:
            folder = run_dir(work, model, seed)
            command = train_command(python, work, "clean", model, OVERRIDES, seed, folder,
                                    STEPS, LR)
            metrics = os.path.join(folder, "metrics.csv")
            out.append(Job(job_name(model, seed), command, [metrics], env=env,
                           summary=lambda metrics=metrics: {
                               "last_test_accuracy": last_test_accuracy(metrics)}))
    return out


def last_test_accuracy(metrics_csv: str) -> float:
    """Test accuracy % after the last update (the reference protocol: no validation split, so
    nothing is selected)."""
    with open(metrics_csv) as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise ValueError(f"{metrics_csv} has no epochs")
    return 100.0 - float(rows[-1]["test_error"])


def table(seeds: List[int], work: str) -> str:
    """The reproduction table: ours (mean ± std and every seed) against the published numbers."""
    lines = [f"### mnist1d reference reproduction: CE, test accuracy % after update {STEPS} "
             f"(Adam {LR:g}, batch 100, no validation split)", "",
             "| model | seeds | ours: mean ± std (per seed) | published | ours − published | "
             f"within ±{TOLERANCE:g}? | reference code's own logs |",
             "|---|---:|---:|---:|---:|:---:|---:|"]
    for model in MODELS:
        values = [summary_of(os.path.join(work, "state"), job_name(model, s))["last_test_accuracy"]
                  for s in seeds]
        summary = summarize(values)
        diff = summary.mean - PUBLISHED[model]
        per_seed = ", ".join(f"{v:.1f}" for v in values)
        within = "yes" if math.isfinite(diff) and abs(diff) <= TOLERANCE else "no"
        lines.append(f"| `{model}` | {len(values)} | {summary.mean:.1f} ± {summary.std:.1f} "
                     f"({per_seed}) | {PUBLISHED[model]:g} | {diff:+.1f} | {within} | "
                     f"{REFERENCE_LOGS[model]} |")
    return "\n".join(lines)
