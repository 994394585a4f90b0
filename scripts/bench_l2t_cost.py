#!/usr/bin/env python
"""Cost of a whole online L2T-DLF run (teacher and student) against CE on MNIST-1D, measured in
one process with the runs interleaved, on the process's CPU clock (other jobs on a shared machine
stay out of the ratio) and on the wall clock.

Target (issue 16): at the defaults, at most 5x CE's time.

    OMP_NUM_THREADS=1 python scripts/bench_l2t_cost.py --steps 3000 --repeats 3

Each variant is a list of dynloss-train overrides; ``ce`` is the baseline. Every run is the
study's MNIST-1D setting (MLP, Adam 1e-2, batch 100, 40 % pair-flip noise, seed 1). The time is
the whole ``train()`` call: data loading from the cache, evaluation each epoch, files.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from typing import Dict, List

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from hydra import compose, initialize_config_module  # noqa: E402

from fairseq_dynloss.study.mnist1d import METHODS  # noqa: E402
from fairseq_dynloss.trainer import train  # noqa: E402

# the study's method overrides (study/mnist1d.py), and one variant of the teacher
VARIANTS: Dict[str, List[str]] = {
    "ce": METHODS["ce"],
    "l2t": METHODS["l2t"],
    "l2t_every1": [*METHODS["l2t"], "teacher.online_every=1"],
    "l2t_unroll4": [*METHODS["l2t"], "teacher.unroll=4"],
    "ala": METHODS["ala"],
}


def run_once(overrides: List[str], steps: int, model: str) -> tuple:
    """(CPU seconds, wall seconds) of one dynloss-train run."""
    with initialize_config_module("fairseq_dynloss.trainer.conf", version_base="1.3"):
        cfg = compose("dynloss_train", overrides=[
            "task=mnist1d", f"model={model}", "optim=adam", "optim.lr=1e-2",
            f"task.max_steps={steps}", "task.label_noise.kind=pairflip", "task.label_noise.rate=0.4",
            "progress=false", "tensorboard=false", "device=cpu", "seed=1",
            f"data_dir={os.environ.get('DYNLOSS_DATA', os.path.join(REPO, 'data'))}", *overrides])
    with tempfile.TemporaryDirectory() as out:
        cpu, wall = time.process_time(), time.perf_counter()
        train(cfg, out)
        return time.process_time() - cpu, time.perf_counter() - wall


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", nargs="+", default=["ce", "l2t", "l2t_every1"],
                        choices=sorted(VARIANTS))
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--model", default="mnist1d_mlp")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds; best of N")
    args = parser.parse_args(argv)
    if "ce" not in args.variants:
        parser.error("--variants must include ce (the baseline)")
    best: Dict[str, List[float]] = {v: [float("inf"), float("inf")] for v in args.variants}
    for round_ in range(args.repeats):
        for variant in args.variants:
            cpu, wall = run_once(VARIANTS[variant], args.steps, args.model)
            best[variant] = [min(best[variant][0], cpu), min(best[variant][1], wall)]
            print(f"round {round_ + 1}: {variant}: {cpu:.1f} s CPU, {wall:.1f} s wall", flush=True)
    print(f"\n{args.model}, {args.steps} updates, best of {args.repeats} interleaved rounds\n")
    print("| variant | CPU s | x ce (CPU) | wall s | x ce (wall) |")
    print("|---|---:|---:|---:|---:|")
    for variant in args.variants:
        cpu, wall = best[variant]
        print(f"| {variant} | {cpu:.1f} | {cpu / best['ce'][0]:.2f} | {wall:.1f} | "
              f"{wall / best['ce'][1]:.2f} |")


if __name__ == "__main__":
    main()
