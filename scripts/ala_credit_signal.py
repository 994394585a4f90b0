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
import functools
import os
import statistics
import sys
from typing import Dict, List, Tuple

import torch
from scipy import stats as scipy_stats

from fairseq_dynloss.controllers import controlled_pairs
from fairseq_dynloss.data.label_noise import noise_matrix
from fairseq_dynloss.study.jobs import Job, run_jobs
from fairseq_dynloss.study.mnist1d import METHODS, NOISE, train_command

OVERRIDES = [*METHODS["ala"], "controller.credit=classes", "controller.train_policy=false",
             "controller.replay_capacity=1000", "threads=1", "plot_every=100000"]


@functools.lru_cache(maxsize=None)
def stored_transitions(folder: str) -> List[Dict]:
    """The transitions a run's controller kept (its replay memory in ``checkpoint_last.pt``),
    read once per folder: every table cell of a run reads them."""
    state = torch.load(os.path.join(folder, "checkpoint_last.pt"), weights_only=True)
    return state["controller"]["controller"]["memory"]["transitions"]


def effects(folder: str) -> Dict[str, List[float]]:
    """{"element"/"window": [effect in the first half, in the second half]} of one run."""
    transitions = stored_transitions(folder)
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


def horizon_effect(folder: str, horizon: int, elements: torch.Tensor) -> float:
    """The effect of a_e(t) on the next ``horizon`` per-element rewards summed,
    r_e(t+1) + ... + r_e(t+H) (a move of Phi persists: the uniform policy does not undo it), over
    the ``elements`` (a (P,) bool mask) and the whole run."""
    transitions = stored_transitions(folder)
    actions = torch.stack([t["action"] for t in transitions])[:, elements]  # (W, P'): a(t)
    rewards = torch.stack([t["reward"] for t in transitions])[:, elements]  # r(t+1) of a(t)
    windows = len(transitions) - horizon + 1
    sums = torch.stack([rewards[t:t + horizon].sum(0) for t in range(windows)])
    actions = actions[:windows]
    return (sums[actions == 1].mean() - sums[actions == -1].mean()).item()


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
    parser.add_argument("--horizons", type=int, nargs="*", default=[],
                        help="also: the effect on the next H per-element rewards summed, per H, "
                             "with pair-flip's flipped pairs apart from the others")
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
    if args.horizons:
        print()
        print("| setting | pairs | " + " | ".join(f"H = {h}" for h in args.horizons) + " |")
        print("|---|---|" + "---:|" * len(args.horizons))
        for setting in args.settings:
            for name, mask in pair_groups(setting).items():
                cells = [interval([horizon_effect(os.path.join(args.work, setting, f"seed{s}"), h, mask)
                                   for s in args.seeds]) for h in args.horizons]
                print(f"| {setting} | {name} | " + " | ".join(cells) + " |")


def flipped_pairs(rate: float, num_classes: int = 10) -> Tuple[torch.Tensor, torch.Tensor]:
    """(P,) bool masks over ``controlled_pairs``: the pairs (i, j) whose labels the pair-flip
    noise at ``rate`` moves from i to j, and the same pairs reversed."""
    T = noise_matrix("pairflip", rate, num_classes)
    pairs = controlled_pairs(num_classes, include_diagonal=False).tolist()
    return (torch.tensor([bool(T[i, j] > 0) for i, j in pairs]),
            torch.tensor([bool(T[j, i] > 0) for i, j in pairs]))


def pair_groups(setting: str) -> Dict[str, torch.Tensor]:
    """Masks over the 90 controlled pairs: under a noise matrix, the pairs it flips (either
    orientation) and the others; else all pairs."""
    noise = dict(option.split("=", 1) for option in NOISE.get(setting, []))
    if noise.get("task.label_noise.kind") != "pairflip":
        return {"all": torch.ones(len(controlled_pairs(10, include_diagonal=False)), dtype=torch.bool)}
    forward, reverse = flipped_pairs(float(noise["task.label_noise.rate"]))
    return {"flipped": forward | reverse, "other": ~(forward | reverse)}


if __name__ == "__main__":
    main()
