"""The ALA controller's overhead in dynloss-train: controller=ala against cross-entropy.

MNIST-1D, the reference MLP, Adam 1e-2, batch 100, 40 % pair-flip label noise, seed 1; ALA runs
``loss=dynamic loss.form=prob controller=ala`` at the configuration's defaults (and variants), the
baseline is ``loss=ce`` without a controller (the run a user would otherwise make). Runs are
alternated, best of ``--repeats`` per variant. Per window of K updates it prints the controller's
time -- split into the per-update validation metric passes, the window-end state and the policy
step (reward, features, REINFORCE update, sampling, Phi update), from ``ala_log.csv`` -- and the
ratio of the trainer's per-epoch training time (its ``time`` column) to the baseline's.

    OMP_NUM_THREADS=1 python scripts/bench_ala.py --steps 700 --repeats 3

Variants (``--variants``):
  defaults      conf/controller/ala.yaml as it is (the target: <= 1.3x cross-entropy)
  every-update  the metric after every update (metric_every=1: the paper's discounted window sum)
  window-end    the metric only after the window's last update (metric_every=K)
  loss-only     the controlled loss (prob form, Phi = I) without a controller: the part of the
                ratio that the loss itself costs, which no controller setting can remove
Variants whose options this checkout does not know are skipped.

``--phases`` splits the time further, per variant: per update the objective's forward and the
student's backward (network and loss), per window the policy step's parts (features,
REINFORCE update, action sampling, applying the actions to Phi, the rest: reward, summary, log
row), measured by wrapping those functions with the same clock; and, apart from training, the
loss alone (``log_softmax`` + loss, forward and backward, at the training batch's shape) against
cross-entropy.

``--clock cpu`` times with the thread's CPU clock (``time.thread_time``; ``bench_clock.py``, as
``bench_trainer.py``) instead of the wall clock, in the trainer's epoch timer, the controller's
phase timers and ``--phases`` alike: on a shared machine other processes then do not enter the
ratio (training runs on this one thread, ``threads=1``).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import math
import os
import platform
import statistics
import sys
import tempfile
from typing import Dict, List, Optional

import torch
from hydra import compose, initialize_config_module
from hydra.errors import ConfigCompositionException

from bench_clock import CLOCKS, clock, now
from fairseq_dynloss.trainer import train

PHASES = ("metric", "state", "policy")
BASE = ["task=mnist1d", "model=mnist1d_mlp", "optim=adam", "optim.lr=1e-2", "task.label_noise.kind=pairflip",
        "task.label_noise.rate=0.4", "seed=1", "device=cpu", "progress=false", "tensorboard=false",
        "plot_every=100000", "threads=1"]
ALA = ["loss=dynamic", "loss.form=prob", "controller=ala"]


def variants(window: int) -> Dict[str, List[str]]:
    """Variant name -> the method's overrides (ALA's, or the loss without a controller)."""
    return {
        "defaults": ALA,
        "every-update": [*ALA, "controller.metric_every=1"],
        "window-end": [*ALA, f"controller.metric_every={window}"],
        "loss-only": [*ALA[:-1], "controller=none"],
    }


def config(overrides: List[str]):
    with initialize_config_module("fairseq_dynloss.trainer.conf", version_base="1.3"):
        return compose("dynloss_train", overrides=overrides)


POLICY_PARTS = ("features", "learn", "act", "apply")
UPDATE_PARTS = ("forward", "backward")


@contextlib.contextmanager
def phase_timers(kind: str, totals: Dict[str, float]):
    """Adds the seconds spent in the wrapped functions to ``totals`` (``--phases``).

    ``forward``: the training objective's forward; ``backward``: ``Tensor.backward`` outside the
    REINFORCE update (the student's); ``features`` / ``learn`` / ``act`` / ``apply``: the target's
    features, the REINFORCE update, action sampling, the target's apply.
    """
    from fairseq_dynloss.controllers import reinforce, targets, window
    from fairseq_dynloss.trainer import objectives

    timer = now(kind)
    inside_learn = [False]

    def timed(name, function):
        def wrapper(*args, **kwargs):
            if name == "backward" and inside_learn[0]:
                return function(*args, **kwargs)
            if name == "learn":
                inside_learn[0] = True
            started = timer()
            try:
                return function(*args, **kwargs)
            finally:
                totals[name] = totals.get(name, 0.0) + timer() - started
                if name == "learn":
                    inside_learn[0] = False
        return wrapper

    patches = [(targets.PairTarget, "features", "features"), (targets.PairTarget, "apply", "apply"),
               (reinforce.ReinforceLearner, "update", "learn"), (window, "sample_actions", "act"),
               (torch.Tensor, "backward", "backward")]
    patches += [(cls, "forward", "forward") for cls in vars(objectives).values()
                if isinstance(cls, type) and issubclass(cls, torch.nn.Module) and "forward" in vars(cls)]
    saved = [(owner, attribute, getattr(owner, attribute)) for owner, attribute, _ in patches]
    for owner, attribute, name in patches:
        setattr(owner, attribute, timed(name, getattr(owner, attribute)))
    try:
        yield totals
    finally:
        for owner, attribute, function in saved:
            setattr(owner, attribute, function)


def run(overrides: List[str], kind: str = "wall", phases: bool = False) -> Dict[str, object]:
    """One training run: per-epoch training times, the ALA log rows (if any) and, with
    ``phases``, the seconds in each part of ``phase_timers``."""
    totals: Dict[str, float] = {}
    timers = phase_timers(kind, totals) if phases else contextlib.nullcontext()
    with tempfile.TemporaryDirectory() as folder, clock(kind), timers:
        history = train(config(overrides), folder)
        path = os.path.join(folder, "ala_log.csv")
        rows = list(csv.DictReader(open(path))) if os.path.exists(path) else []
    return {"epoch_times": [row["time"] for row in history], "rows": rows, "phases": totals}


def loss_alone(kind: str, batch: int = 100, classes: int = 10, rounds: int = 30) -> Dict[str, float]:
    """Microseconds per call of ``log_softmax`` + loss, forward and backward, at the training
    batch's shape: cross-entropy, and the prob form at ALA's starting Phi (row softmax of logits
    0 / -9.2). Variants alternate, best of ``rounds`` rounds of 100 calls."""
    import torch.nn.functional as F

    from fairseq_dynloss.losses import build_phi, dynamic_loss, phi_from_logits

    timer = now(kind)
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(batch, classes, generator=generator, requires_grad=True)
    target = torch.randint(0, classes, (batch,), generator=generator)
    phi = build_phi("full", classes)
    start = torch.full((classes, classes), -9.2).fill_diagonal_(0.0)
    phi.load_tensors({"matrix": phi_from_logits(start, torch.tensor(1.0))}, form="prob")

    def ce():
        F.cross_entropy(logits, target).backward()
        logits.grad = None

    def prob():
        (dynamic_loss(F.log_softmax(logits, 1), target, phi, form="prob").loss / batch).backward()
        logits.grad = None

    best = {"ce": math.inf, "prob": math.inf}
    for _ in range(rounds):
        for name, step in (("ce", ce), ("prob", prob)):
            for _ in range(10):
                step()
            started = timer()
            for _ in range(100):
                step()
            best[name] = min(best[name], 1e4 * (timer() - started))
    return best


def per_window(rows: List[Dict[str, str]], key: str) -> Optional[float]:
    """Mean seconds per window of a log column (the first window, with first-call costs, left out)."""
    rows = rows[1:] or rows
    if not rows or key not in rows[0]:
        return None
    return statistics.fmean(float(row[key]) for row in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=700, help="student updates per run (35 per epoch)")
    parser.add_argument("--repeats", type=int, default=3, help="best of N runs per variant")
    parser.add_argument("--variants", nargs="+", default=None)
    parser.add_argument("--clock", choices=CLOCKS, default="wall",
                        help="wall seconds, or this thread's CPU seconds (robust on a shared machine)")
    parser.add_argument("--phases", action="store_true",
                        help="also time the objective's forward, the student's backward and the policy "
                             "step's parts, and the loss alone against cross-entropy")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="extra controller overrides for every ALA variant (e.g. controller.window=20)")
    args = parser.parse_args()

    window = int(config([*BASE, *ALA, *args.set]).controller.window)
    table = {name: overrides + (args.set if "controller=ala" in overrides else [])
             for name, overrides in variants(window).items()}
    chosen = args.variants or list(table)
    runnable = {}
    for name in chosen:
        overrides = [*BASE, f"task.max_steps={args.steps}", *table[name]]
        try:
            config(overrides)
            runnable[name] = overrides
        except ConfigCompositionException as err:
            print(f"# skipping {name}: this checkout does not know its options ({err})")
    baseline = [*BASE, f"task.max_steps={args.steps}", "loss=ce", "controller=none"]

    results: Dict[str, List[Dict[str, object]]] = {name: [] for name in ["none", *runnable]}
    for _ in range(args.repeats):  # alternate, so that load changes hit every variant alike
        results["none"].append(run(baseline, args.clock, args.phases))
        for name, overrides in runnable.items():
            results[name].append(run(overrides, args.clock, args.phases))

    steps = 35  # updates per MNIST-1D epoch at batch 100 (3500 training samples)
    epoch_none = min(statistics.fmean(r["epoch_times"]) for r in results["none"])
    command = "OMP_NUM_THREADS=%s python scripts/bench_ala.py %s" % (
        os.environ.get("OMP_NUM_THREADS", "?"), " ".join(sys.argv[1:]))
    print(f"# {command}")
    print(f"# MNIST-1D MLP, {args.steps} updates ({steps} per epoch), best of {args.repeats}, {args.clock} clock; "
          f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {platform.machine()}")
    print(f"# loss=ce, controller=none: {1000 * epoch_none / steps:.3f} ms per update")
    print("| variant | K | metric ms/window | state | policy | controller ms/window | "
          "training ms/window | controller / training | epoch time ratio vs CE |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in runnable:
        best = min(results[name], key=lambda r: statistics.fmean(r["epoch_times"]))
        phases = [per_window(best["rows"], f"time_{p}") for p in PHASES]
        total = per_window(best["rows"], "controller_time")
        training = 1000 * epoch_none / steps * window
        cells = ["-" if v is None else f"{1000 * v:.2f}" for v in phases]
        controller = "-" if total is None else f"{1000 * total:.2f}"
        share = "-" if total is None else f"{1000 * total / training:.1%}"
        ratio = statistics.fmean(best["epoch_times"]) / epoch_none
        print(f"| {name} | {window} | {' | '.join(cells)} | {controller} | {training:.2f} | "
              f"{share} | {ratio:.3f}x |")
    if args.phases:
        print_phases(results, runnable, args.steps, window, args.clock)


def print_phases(results, runnable, steps: int, window: int, kind: str) -> None:
    """The ``--phases`` tables (module docstring), from each variant's fastest run."""
    print("| variant | forward ms/update | backward ms/update | "
          + " | ".join(f"{part} ms/window" for part in POLICY_PARTS) + " | rest of policy ms/window |")
    print("|---|" + "---:|" * (len(UPDATE_PARTS) + len(POLICY_PARTS) + 1))
    for name in ["none", *runnable]:
        best = min(results[name], key=lambda r: statistics.fmean(r["epoch_times"]))
        totals = best["phases"]
        windows = max(1, len(best["rows"]))
        cells = [f"{1000 * totals.get(part, 0.0) / steps:.3f}" for part in UPDATE_PARTS]
        cells += [f"{1000 * totals.get(part, 0.0) / windows:.2f}" if best["rows"] else "-"
                  for part in POLICY_PARTS]
        rest = "-"
        if best["rows"]:  # the policy phase's time outside the four wrapped parts
            policy = sum(float(row["time_policy"]) for row in best["rows"])
            rest = f"{1000 * (policy - sum(totals.get(part, 0.0) for part in POLICY_PARTS)) / windows:.2f}"
        print(f"| {'ce (baseline)' if name == 'none' else name} | {' | '.join(cells)} | {rest} |")
    alone = loss_alone(kind)
    print(f"# loss alone (log_softmax + loss, forward and backward, N = 100, C = 10, best of 30 x 100): "
          f"cross-entropy {alone['ce']:.1f} us, prob form (full Phi) {alone['prob']:.1f} us "
          f"({alone['prob'] / alone['ce']:.2f}x)")


if __name__ == "__main__":
    main()
