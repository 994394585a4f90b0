"""The ALA controller's overhead in dynloss-train: controller=ala against controller=none.

Same run config (digits, MLP, loss=dynamic + NLL 0.5, Adam, seed 1) with and without the
controller, runs alternated, best of ``--repeats`` per variant. Per window of K updates it prints
the controller's time -- split into the per-update validation metric passes, the window-end state,
the policy step (reward, features, replay, REINFORCE update, sampling) and the Phi update, from
``ala_log.csv`` -- against the training time of K updates without a controller, and the ratio of
the trainer's per-epoch training time (its ``time`` column) with and without the controller.

    OMP_NUM_THREADS=1 python scripts/bench_ala.py --epochs 5 --repeats 3

Variants (``--variants``):
  every-update-full-val  metric after every update on the whole validation split (the paper's
                         reward; the previous default)
  every-update-subset    the same on a fixed subset of ``--subset`` validation examples
  window-end             the metric only after the window's last update (metric_every = K)
  window-end-K50         the same with K = 50
Variants whose options this checkout does not know are skipped (to time an older checkout, run
this script with that checkout first on PYTHONPATH).
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import statistics
import sys
import tempfile
from typing import Dict, List, Optional

import torch
from hydra import compose, initialize_config_module
from hydra.errors import ConfigCompositionException

from fairseq_dynloss.trainer import train

PHASES = ("metric", "state", "policy", "phi")
BASE = ["task=digits", "model=mlp", "loss=dynamic", "loss.scale=1.0", "loss.nll_weight=0.5",
        "optim=adam", "optim.lr=0.003", "device=cpu", "progress=false", "tensorboard=false", "plot_every=100000"]


def variants(window: int, subset: int) -> Dict[str, List[str]]:
    return {
        "every-update-full-val": [f"controller.window={window}", "controller.val_subset=0"],
        "every-update-subset": [f"controller.window={window}", f"controller.val_subset={subset}"],
        "window-end": [f"controller.window={window}", "controller.val_subset=0",
                       f"controller.metric_every={window}"],
        "window-end-K50": ["controller.window=50", "controller.val_subset=0", "controller.metric_every=50"],
    }


def config(overrides: List[str]):
    with initialize_config_module("fairseq_dynloss.trainer.conf", version_base="1.3"):
        return compose("dynloss_train", overrides=overrides)


def run(overrides: List[str]) -> Dict[str, object]:
    """One training run: per-epoch training times and the ALA log rows (if any)."""
    with tempfile.TemporaryDirectory() as folder:
        history = train(config(overrides), folder)
        path = os.path.join(folder, "ala_log.csv")
        rows = list(csv.DictReader(open(path))) if os.path.exists(path) else []
    return {"epoch_times": [row["time"] for row in history], "rows": rows}


def per_window(rows: List[Dict[str, str]], key: str) -> Optional[float]:
    """Mean seconds per window of a log column (the first window, with first-call costs, left out)."""
    rows = rows[1:] or rows
    if not rows or key not in rows[0]:
        return None
    return statistics.fmean(float(row[key]) for row in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3, help="best of N runs per variant")
    parser.add_argument("--window", type=int, default=10, help="K of the main variants")
    parser.add_argument("--subset", type=int, default=64, help="validation examples of every-update-subset")
    parser.add_argument("--variants", nargs="+", default=None)
    args = parser.parse_args()

    table = variants(args.window, args.subset)
    chosen = args.variants or list(table)
    runnable = {}
    for name in chosen:
        overrides = [*BASE, f"task.epochs={args.epochs}", "controller=ala", *table[name]]
        try:
            config(overrides)
            runnable[name] = overrides
        except ConfigCompositionException as err:
            print(f"# skipping {name}: this checkout does not know its options ({err})")
    baseline = [*BASE, f"task.epochs={args.epochs}", "controller=none"]

    results: Dict[str, List[Dict[str, object]]] = {name: [] for name in ["none", *runnable]}
    for _ in range(args.repeats):  # alternate, so that load changes hit every variant alike
        results["none"].append(run(baseline))
        for name, overrides in runnable.items():
            results[name].append(run(overrides))

    steps = 17  # updates per digits epoch at batch 64 (1077 training images)
    epoch_none = min(statistics.fmean(r["epoch_times"]) for r in results["none"])
    command = "OMP_NUM_THREADS=%s python scripts/bench_ala.py %s" % (
        os.environ.get("OMP_NUM_THREADS", "?"), " ".join(sys.argv[1:]))
    print(f"# {command}")
    print(f"# digits MLP loss=dynamic, {args.epochs} epochs x {steps} updates, best of {args.repeats}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {platform.machine()}")
    print(f"# controller=none: {1000 * epoch_none / steps:.3f} ms per update")
    print("| variant | K | metric ms/window | state | policy | phi | controller ms/window | "
          "training ms/window | controller / training | epoch time ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in runnable:
        window = 50 if name.endswith("K50") else args.window
        best = min(results[name], key=lambda r: statistics.fmean(r["epoch_times"]))
        phases = [per_window(best["rows"], f"time_{p}") for p in PHASES]
        total = per_window(best["rows"], "controller_time")
        training = 1000 * epoch_none / steps * window
        cells = ["-" if v is None else f"{1000 * v:.2f}" for v in phases]
        ratio = statistics.fmean(best["epoch_times"]) / epoch_none
        print(f"| {name} | {window} | {' | '.join(cells)} | {1000 * total:.2f} | {training:.2f} | "
              f"{1000 * total / training:.1%} | {ratio:.3f}x |")


if __name__ == "__main__":
    main()
