"""ALA with a policy learned over several earlier runs (policy transfer), on MNIST-1D.

Why: within one run ALA's policy does not learn how its actions should depend on the state
(docs/investigation.md §4c). Its REINFORCE learner gets one reward per window, 300 windows in a
3000-update run, and that reward is mostly noise; the controller's own contextual-bandit test,
with a noise-free reward, needs 1500 windows to reach 90 % correct actions
(tests/controllers/test_ala_window.py). The slides transfer a policy between runs. Here the
policy is trained over ``--pretrain-runs`` ALA runs, one after another, each starting from the
previous run's policy (``controller.policy_path``), then deployed, still learning, on the
study's settings.

The method must not know the benchmark's noise pattern: the pre-training runs alternate clean
labels and a *random* one-target flip (40 %, ``data.label_noise.random_sparse_noise_matrix``
with matrix seed 100 + r on the even runs r: 102, 104, ...; never the study's pair-flip
i -> i+1 nor its sparse matrix, seed 0), with student seeds 1001, 1002, ... (never an
evaluation seed). Symmetric noise is a family the policy never saw.

Every run is the study's MNIST-1D MLP command (``study/mnist1d.py``, ALA's overrides) plus the
policy file, so its rows pair with the study's archived ``ce`` and ``ala`` records
(``results/runs/``) on the same seeds. The table reads validation unless ``--test``:

    OMP_NUM_THREADS=1 python scripts/ala_transfer.py --seeds 1 2 3 4 5            # choose
    OMP_NUM_THREADS=1 python scripts/ala_transfer.py --seeds 1 2 3 4 5 6 7 8 9 10 --test
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import List

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from fairseq_dynloss.study.jobs import Job, load_record, run_jobs  # noqa: E402
from fairseq_dynloss.study.mnist1d import METHODS, NOISE, job_name, train_command  # noqa: E402
from fairseq_dynloss.study.runs import run_summary  # noqa: E402
from fairseq_dynloss.study.stats import paired_comparison, summarize  # noqa: E402

MODEL, LR = "mnist1d_mlp", 0.01
SETTINGS = ["pairflip40", "clean", "symmetric50", "sparse40"]


def pretrain_jobs(python: str, work: str, runs: int, steps: int, env, extra: List[str] = ()) -> List[Job]:
    """The chain of pre-training runs; the last one's ``ala_controller.pt`` is the policy.
    ``extra``: more overrides of every run (e.g. ``controller.hold=20``)."""
    from fairseq_dynloss.data.label_noise import random_sparse_noise_matrix, write_noise_matrix

    out, previous = [], None
    for r in range(1, runs + 1):
        folder = os.path.join(work, "pretrain", f"run{r}")
        overrides = [*METHODS["ala"], *extra]
        if r % 2 == 0:  # every other run: a random one-target flip the benchmarks do not use
            matrix = os.path.join(work, "pretrain", f"flip_seed{100 + r}.csv")
            os.makedirs(os.path.dirname(matrix), exist_ok=True)
            write_noise_matrix(matrix, random_sparse_noise_matrix(10, 0.4, 100 + r, max_targets=1))
            overrides += ["task.label_noise.kind=matrix", f"task.label_noise.matrix={matrix}"]
        if previous is not None:
            overrides.append(f"controller.policy_path={os.path.join(previous, 'ala_controller.pt')}")
        command = train_command(python, work, "clean", MODEL, overrides, 1000 + r, folder, steps, LR)
        out.append(Job(f"pretrain_run{r}", command, [os.path.join(folder, "ala_controller.pt")],
                       after=(out[-1].name,) if out else (), env=env))
        previous = folder
    return out


def deploy_jobs(python: str, work: str, pretrained: Job, settings, seeds, steps: int,
                env, extra: List[str] = ()) -> List[Job]:
    """ALA from the policy ``pretrained`` left (still learning), on each setting and seed."""
    from fairseq_dynloss.study.mnist1d import write_sparse_matrix

    write_sparse_matrix(work)  # the study's sparse40 matrix (seeded), for that setting
    policy = pretrained.outputs[0]
    out = []
    for setting in settings:
        for seed in seeds:
            folder = os.path.join(work, setting, f"ala_transfer_seed{seed}")
            overrides = [*METHODS["ala"], *extra, f"controller.policy_path={policy}"]
            command = train_command(python, work, setting, MODEL, overrides, seed, folder, steps, LR)
            out.append(Job(f"{setting}_ala_transfer_seed{seed}", command,
                           [os.path.join(folder, "metrics.csv")], after=(pretrained.name,), env=env,
                           summary=lambda folder=folder: run_summary(folder)))
    return out


def table(work: str, settings, seeds, split: str) -> str:
    """Accuracy % on ``split`` at the best-validation epoch: the transferred policy against the
    study's archived ce and ala runs, paired by seed."""
    archive = os.path.join(REPO, "results", "runs")
    lines = [f"| setting | ce ({split}) | ala | ala_transfer | transfer - ce (95 % CI), p | "
             f"transfer - ala, p | MDD |", "|---|---:|---:|---:|---:|---:|---:|"]
    for setting in settings:
        acc = {}
        for name in ("ce", "ala"):
            records = [load_record(archive, job_name(setting, MODEL, name, s)) for s in seeds]
            acc[name] = [100.0 - r.summary[f"{split}_error"] for r in records]
        acc["transfer"] = [100.0 - load_record(os.path.join(work, "jobs"),
                                               f"{setting}_ala_transfer_seed{s}").summary[f"{split}_error"]
                           for s in seeds]
        vs_ce, vs_ala = (paired_comparison(acc[b], acc["transfer"]) for b in ("ce", "ala"))
        cell = lambda k: f"{summarize(acc[k]).mean:.2f} ± {summarize(acc[k]).std:.2f}"
        lines.append(f"| {setting} | {cell('ce')} | {cell('ala')} | {cell('transfer')} | "
                     f"{vs_ce.mean_diff:+.2f} [{vs_ce.ci_low:+.2f}, {vs_ce.ci_high:+.2f}], "
                     f"{vs_ce.p_t:.2g} | {vs_ala.mean_diff:+.2f}, {vs_ala.p_t:.2g} | {vs_ce.mdd:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pretrain-runs", type=int, default=8)
    parser.add_argument("--settings", nargs="+", default=SETTINGS, choices=list(NOISE))
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--work", default=os.path.join(REPO, "work", "ala_transfer"))
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--test", action="store_true", help="report test accuracy, not validation")
    parser.add_argument("--overrides", nargs="*", default=[],
                        help="more dynloss-train overrides of every pre-training and deployed run "
                             "(e.g. controller.hold=20 controller.credit=classes); use another --work")
    args = parser.parse_args()
    if args.pretrain_runs < 1:
        parser.error(f"--pretrain-runs {args.pretrain_runs}: expected >= 1")
    work = os.path.abspath(args.work)
    env = {"OMP_NUM_THREADS": "1"}
    chain = pretrain_jobs(sys.executable, work, args.pretrain_runs, args.steps, env, args.overrides)
    jobs = chain + deploy_jobs(sys.executable, work, chain[-1], args.settings, args.seeds,
                               args.steps, env, args.overrides)
    run_jobs(jobs, os.path.join(work, "jobs"), workers=args.workers, progress=False)
    print(f"# python scripts/ala_transfer.py {' '.join(sys.argv[1:])}")
    print(table(work, args.settings, args.seeds, "test" if args.test else "val"))


if __name__ == "__main__":
    main()
