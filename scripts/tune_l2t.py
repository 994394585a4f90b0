#!/usr/bin/env python
"""Choose online L2T-DLF's defaults on VALIDATION data: variants of the teacher's settings on
MNIST-1D, paired seeds, best-validation accuracy only (the test split is never read here).

Each variant is a list of dynloss-train overrides added to the study's ``l2t`` method; CE runs
the same seeds as the paired reference. The table gives, per setting, the mean best-validation
accuracy, its paired difference from CE (paired t p-value) and the run's wall time over CE's.

    python scripts/tune_l2t.py --variants every1 every4 --settings clean pairflip40 --seeds 5

Writes ``results/tuning_l2t.md`` (``--out``); runs are kept under ``--work`` and reused.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Dict, List

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from fairseq_dynloss.study import mnist1d  # noqa: E402
from fairseq_dynloss.study.jobs import Job, run_jobs  # noqa: E402
from fairseq_dynloss.study.runs import best_val_accuracy, teacher_seconds, training_seconds  # noqa: E402
from fairseq_dynloss.study.stats import paired_comparison  # noqa: E402

# variant -> overrides on top of the study's l2t method (teacher=l2t at its config defaults)
VARIANTS: Dict[str, List[str]] = {
    "default": [],
    "every1": ["teacher.online_every=1"],
    "every2": ["teacher.online_every=2"],
    "every4": ["teacher.online_every=4"],
    "every4_dev8": ["teacher.online_every=4", "teacher.dev_batches=8"],
    "every1_dev8": ["teacher.online_every=1", "teacher.dev_batches=8"],
    "every1_loglik": ["teacher.online_every=1", "teacher.dev_objective=log_likelihood"],
    "every1_penalty0.1": ["teacher.online_every=1", "teacher.phi_penalty=0.1"],
    "every1_penalty1": ["teacher.online_every=1", "teacher.phi_penalty=1.0"],
    "unroll4_every4": ["teacher.unroll=4", "teacher.online_every=4"],
}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", nargs="+", default=["default"], choices=sorted(VARIANTS))
    parser.add_argument("--settings", nargs="+", default=["clean", "pairflip40"],
                        choices=sorted(mnist1d.NOISE))
    parser.add_argument("--model", default="mnist1d_mlp")
    parser.add_argument("--seeds", type=int, default=5, help="seeds 1..N (paired)")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--work", default=os.path.join(REPO, "work", "tune_l2t"))
    parser.add_argument("--out", default=os.path.join(REPO, "results", "tuning_l2t.md"))
    args = parser.parse_args(argv)
    if args.seeds < 2:
        parser.error(f"--seeds {args.seeds}: a paired comparison needs at least 2 seeds")
    seeds = range(1, args.seeds + 1)
    if "sparse40" in args.settings:
        mnist1d.write_sparse_matrix(args.work)
    env = {"OMP_NUM_THREADS": "1"}
    methods = {"ce": mnist1d.METHODS["ce"],
               **{v: mnist1d.METHODS["l2t"] + VARIANTS[v] for v in args.variants}}
    jobs = []
    for setting in args.settings:
        for method, overrides in methods.items():
            for seed in seeds:
                folder = mnist1d.run_dir(args.work, setting, args.model, method, seed)
                command = mnist1d.train_command(sys.executable, args.work, setting, args.model,
                                                overrides, seed, folder, args.steps, args.lr)
                jobs.append(Job(f"{setting}_{args.model}_{method}_seed{seed}", command,
                                [os.path.join(folder, "metrics.csv")], env=env))
    run_jobs(jobs, os.path.join(args.work, "state"), workers=args.workers)

    lines = [f"`python scripts/tune_l2t.py --variants {' '.join(args.variants)} --settings "
             f"{' '.join(args.settings)} --model {args.model} --seeds {args.seeds} --steps "
             f"{args.steps}`: best-VALIDATION accuracy % (the test split is not read), seeds "
             f"1..{args.seeds}, paired with CE; time = wall time (teacher included) over CE's.", "",
             "| setting | variant | overrides | val accuracy % | Δ vs ce | p (paired t) | time × ce |",
             "|---|---|---|---:|---:|---:|---:|"]
    for setting in args.settings:
        def results(method):
            folders = [mnist1d.run_dir(args.work, setting, args.model, method, s) for s in seeds]
            accuracy = [best_val_accuracy(f, "val") for f in folders]
            seconds = sum(training_seconds(f) + teacher_seconds(f) for f in folders)
            return accuracy, seconds
        ce, ce_seconds = results("ce")
        for method in methods:
            accuracy, seconds = results(method)
            mean = sum(accuracy) / len(accuracy)
            if method == "ce":
                diff, p = "—", "—"
            else:
                r = paired_comparison(ce, accuracy)
                diff, p = f"{r.mean_diff:+.2f}", f"{r.p_t:.2g}"
            overrides = " ".join(VARIANTS.get(method, [])) or ("(defaults)" if method != "ce" else "")
            lines.append(f"| {setting} | {method} | {overrides} | {mean:.2f} | {diff} | {p} | "
                         f"{seconds / ce_seconds:.2f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as handle:
        handle.write(text)


if __name__ == "__main__":
    main()
