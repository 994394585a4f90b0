"""How much does one ALA action move its own reward? A measurement of the learning signal.

REINFORCE can only learn what an action changes in its reward. This runs ALA on MNIST-1D with
the policy *frozen at uniform* (``train_policy=false``: every element's action is a fair random
draw, so the comparison below is a randomised experiment) and per-class credit
(``controller.credit=classes``), keeps every transition (the replay memory, never sampled), and
reports per seed the effect of an element's action on the reward that credits it:

    effect = mean r_e(t+1) over elements that took a_e = +1  -  the same over a_e = -1

for the per-class element reward and for the window reward (one sign for all elements). An
effect of 0 means the reward carries no information about the action: the policy can only
drift. The mean over seeds comes with a t interval; the run's phases are split into halves.

    OMP_NUM_THREADS=1 python scripts/ala_credit_signal.py --seeds 1 2 3 4 5
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
from typing import Dict, List

import torch
from scipy import stats as scipy_stats

from fairseq_dynloss.study.jobs import Job, run_jobs
from fairseq_dynloss.study.mnist1d import METHODS, train_command

OVERRIDES = [*METHODS["ala"], "controller.credit=classes", "controller.train_policy=false",
             "controller.replay_capacity=1000", "threads=1", "plot_every=100000"]


def effects(folder: str) -> Dict[str, List[float]]:
    """{"element"/"window": [effect in the first half, in the second half]} of one run."""
    state = torch.load(os.path.join(folder, "checkpoint_last.pt"), weights_only=True)
    transitions = state["controller"]["controller"]["memory"]["transitions"]
    with open(os.path.join(folder, "ala_log.csv")) as handle:
        window_reward = [float(r["reward"]) for r in csv.DictReader(handle) if r["reward"] != ""]
    half = len(transitions) // 2
    out: Dict[str, List[float]] = {"element": [], "window": []}
    for part in (transitions[:half], transitions[half:]):
        for kind in out:
            plus, minus = [], []
            for t in part:
                rewards = t["reward"] if kind == "element" else torch.full(t["action"].shape, window_reward[t["step"]])
                plus.append(rewards[t["action"] == 1])
                minus.append(rewards[t["action"] == -1])
            out[kind].append(torch.cat(plus).mean().item() - torch.cat(minus).mean().item())
    return out


def interval(values: List[float]) -> str:
    mean = statistics.fmean(values)
    if len(values) < 2:
        return f"{mean:+.4f}"
    half = scipy_stats.t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / len(values) ** 0.5
    return f"{mean:+.4f} [{mean - half:+.4f}, {mean + half:+.4f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--settings", nargs="+", default=["pairflip40", "clean"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--work", default="work/ala_credit_signal")
    parser.add_argument("--overrides", nargs="*", default=[],
                        help="more dynloss-train overrides (e.g. controller.logit_init=-3); use another --work")
    args = parser.parse_args()
    jobs = []
    for setting in args.settings:
        for seed in args.seeds:
            folder = os.path.join(args.work, setting, f"seed{seed}")
            command = train_command(sys.executable, "work", setting, "mnist1d_mlp", OVERRIDES + args.overrides, seed, folder,
                                    args.steps, 0.01)
            jobs.append(Job(f"{setting}_seed{seed}", command, [os.path.join(folder, "checkpoint_last.pt")],
                            env={"OMP_NUM_THREADS": "1"}))
    run_jobs(jobs, os.path.join(args.work, "jobs"), workers=1, progress=False)
    print("# OMP_NUM_THREADS=1 python scripts/ala_credit_signal.py " + " ".join(sys.argv[1:]))
    print("| setting | reward | effect of a = +1 vs -1, first half of the run (mean [95 % CI] over seeds) "
          "| second half |")
    print("|---|---|---:|---:|")
    for setting in args.settings:
        runs = [effects(os.path.join(args.work, setting, f"seed{s}")) for s in args.seeds]
        for kind in ("element", "window"):
            cells = [interval([r[kind][h] for r in runs]) for h in (0, 1)]
            print(f"| {setting} | {kind} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
