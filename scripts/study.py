#!/usr/bin/env python
"""The results study: every method over several seeds on the offline tasks -> RESULTS.md.

    .venv/bin/python scripts/study.py                    # every part
    .venv/bin/python scripts/study.py --parts mnist1d    # one part: results/mnist1d.md, RESULTS.md
    .venv/bin/python scripts/study.py --parts digits --seeds 3 --out /tmp/RESULTS.md

Each part writes its own section, ``results/<part>.md`` beside ``--out``, and RESULTS.md is
assembled from every section present, so a part regenerates alone.

Parts:
* ``digits`` (scikit-learn 8x8 digits, ``dynloss-train``): MLP and LeNet with CE, label
  smoothing, L-Softmax, self-paced, and L2T-DLF and ALA in both loss forms with their fixed-Phi
  controls (prob: online teacher; paper: one episodic teacher trained in the seed-1 run, and
  multi-network ALA, 2 processes); test error at the best-validation epoch. Plus AUCPR, CE vs
  ALA with the AUCPR reward (MLP).
* ``toy`` (the toy translation corpus, ``fairseq-train`` through ``recipes/toy/``;
  ``fairseq_dynloss/study/translation.py``): Transformer and LSTM students with CE,
  label-smoothed CE, the sequence-level criteria fine-tuned from each seed's CE model (and CE
  fine-tuned the same way as their control), the fixed-Phi control, L2T-DLF (one teacher per
  architecture and form, then students) and ALA (``--task translation_ala``), each in both loss
  forms; 10 paired seeds, sacrebleu BLEU on test.
* ``mnist1d`` (``fairseq_dynloss/study/mnist1d.py``): MNIST-1D clean and under three label-noise
  patterns, 10 paired seeds; CE, validation-tuned label smoothing and Poly-1, the fixed-Phi
  control, the forward-correction oracle, L2T-DLF and ALA, and in the development table both
  loss forms and every control; paired t / Wilcoxon / bootstrap CI / minimum detectable
  difference. The default tables (``mnist1d.PLAN``: the MLP on every setting, the CNN under
  pair-flip noise) are what fits 150 minutes on 2 cores.
* ``mnist1d_reference`` (``fairseq_dynloss/study/mnist1d_reference.py``): CE on the MNIST-1D
  reference models under the reference schedule (8000 updates, no validation split), 5 seeds,
  against the published test accuracies: the benchmark reproduces before it judges anything.
* ``toy_hard`` (``fairseq_dynloss/study/toy_hard.py``): the hard synthetic translation corpus
  (``recipes/toy_hard/``), transformer, 10 paired seeds; the toy part's rows and jobs.
* ``toy_lstm2k`` (``fairseq_dynloss/study/toy_lstm2k.py``): the toy corpus's LSTM student with
  2000-token batches, where CE aligns on every seed (the toy part's 1000-token LSTM stalls on
  some); the toy part's rows and jobs but ``dynamic_fixed``, plus ``l2t_init``, 10 paired seeds.
* ``toy_hard_lstm`` (``fairseq_dynloss/study/toy_hard_lstm.py``): the hard corpus's LSTM student
  with the same settings; five rows, 10 paired seeds.
* ``toy_hard_lstm4k`` (``fairseq_dynloss/study/toy_hard_lstm4k.py``): the same with 4000-token
  batches, where CE aligns on every screened seed (at 2000 tokens it stalls on some); four rows
  (label smoothing cut), 10 paired seeds.
  (A part whose runs are not all archived yet is listed in ``IN_PROGRESS`` and runs only when
  named in ``--parts``.)

Every table is paired (the methods run the same seeds): the per-seed difference from CE, its
bootstrap CI, paired t and Wilcoxon p-values, the minimum detectable difference, and time
relative to CE (digits, mnist1d: training CPU time incl. controller / teacher work; toy, toy_hard:
job wall time). Jobs run two at a time with one thread each (two cores); finished jobs
are recorded under ``--work`` and skipped when the study is run again (delete it to redo).
Plots go to ``--plots`` (default ``docs/img/study``).
"""

from __future__ import annotations

import argparse
import collections
import csv
import datetime
import os
import platform
import sys
import time
from typing import Dict, List, Sequence, Tuple

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from fairseq_dynloss.study import (  # noqa: E402
    mnist1d, mnist1d_reference, toy_hard, toy_hard_lstm, toy_hard_lstm4k, toy_lstm2k, translation,
)
from fairseq_dynloss.study.jobs import Job, forget_records, load_record, run_jobs, summary_of  # noqa: E402
from fairseq_dynloss.study.report import MethodRow, paired_table, verdict, versus_paired  # noqa: E402
from fairseq_dynloss.study.runs import run_summary  # noqa: E402

PYTHON = sys.executable
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

# -- digits ------------------------------------------------------------------------------------
# name -> dynloss-train overrides. The names follow the other parts: ``l2t`` / ``ala`` are the
# prob form at dynloss-train's defaults (online teacher), ``*_paper`` the papers' form, mixed with
# NLL (weight 0.5: without it -sigmoid(Phi[y] . log p) saturates and training stalls, README
# "ALA") at scale 1 (dynloss-train's default when these rows were first made; now 1/sqrt(C)).
PAPER = ["loss=dynamic", "loss.form=paper", "loss.scale=1.0", "loss.nll_weight=0.5"]
DIGITS_METHODS: Dict[str, List[str]] = {
    "ce": ["loss=ce"],
    "label_smoothing": ["loss=label_smoothing"],
    "lsoftmax": ["loss=lsoftmax"],
    "self_paced": ["loss=self_paced"],
    # The controls of L2T-DLF and ALA: the same loss with Phi fixed at the identity; what the
    # teacher / controller adds is the difference to this row (docs/investigation.md). In the
    # prob form that is CE up to round-off.
    "dynamic_fixed": ["loss=dynamic", "loss.form=prob"],
    "l2t": ["loss=dynamic", "loss.form=prob", "teacher=l2t"],
    "ala": ["loss=dynamic", "loss.form=prob", "controller=ala"],
    "dynamic_fixed_paper": PAPER,
    # One teacher per model, trained in the seed-1 run (phase a: 100 teacher steps of 50
    # unrolled updates); the other seeds load it (teacher.path), as the paper reuses a teacher.
    "l2t_paper": [*PAPER, "teacher=l2t", "teacher.mode=episodic", "teacher.lr=1e-3",
                  "teacher.dev_objective=expected_accuracy"],  # + --digits-teacher
    "ala_paper": [*PAPER, "controller=ala"],
    "ala_multi_paper": [*PAPER, "controller=ala", "controller.multi_network=true"],
}
# row -> its fixed-Phi control (same form, Phi = I), compared paired in the row's notes
DIGITS_CONTROL = {"l2t": "dynamic_fixed", "ala": "dynamic_fixed", "l2t_paper": "dynamic_fixed_paper",
                  "ala_paper": "dynamic_fixed_paper", "ala_multi_paper": "dynamic_fixed_paper"}
SHARED_TEACHER = "l2t_paper"  # the episodic row: one teacher, trained in the seed-1 run
DIGITS_NOTES = {"dynamic_fixed": "control: prob form, Phi = I (= CE)",
                "l2t": "prob form, online teacher (each seed its own)",
                "ala": "prob form",
                "dynamic_fixed_paper": "control: paper form + 0.5 NLL, Phi = I",
                "ala_paper": "paper form"}
MULTI_PROCESS = {"ala_multi_paper": 2}
AUCPR_METHODS: Dict[str, List[str]] = {
    "ce": ["loss=ce"],
    "ala_aucpr": [*PAPER, "controller=ala", "controller.reward_metric=aucpr"],
}

# -- toy translation: fairseq_dynloss/study/translation.py -----------------------------------
TOY_UPDATES = {"transformer": 600, "lstm": 2000}


def child_dir(run_dir: str, method: str) -> str:
    """Where a run's metrics are: multi-network ALA trains child r (seed + r) into
    ``child<r>/``; child 0 has the run's own seed, like the other rows."""
    return os.path.join(run_dir, "child0") if method in MULTI_PROCESS else run_dir


def digits_jobs(args, work: str) -> List[Job]:
    jobs = []
    grids = [(m, name, overrides, ["task.metrics=[error]"])
             for m in args.digits_models for name, overrides in DIGITS_METHODS.items()
             if name in args.digits_methods]
    grids += [("mlp", "aucpr_" + name, overrides, ["task.metrics=[aucpr,error]"])
              for name, overrides in AUCPR_METHODS.items()] if args.aucpr else []
    for model, name, overrides, metrics in grids:
        metric = "aucpr" if name.startswith("aucpr_") else "error"
        for seed in args.seed_list:
            run_dir = os.path.join(work, "digits", f"{model}_{name}_seed{seed}")
            command = ["-m", "fairseq_dynloss.trainer", "task=digits", f"model={model}",
                       *overrides, *metrics, f"seed={seed}", f"task.epochs={args.digits_epochs}",
                       "progress=false", "tensorboard=false", "overwrite=true", "device=cpu",
                       f"hydra.run.dir={run_dir}"]
            after = ()
            if name == SHARED_TEACHER:
                command[-1:-1] = [f"teacher.steps={args.digits_teacher[0]}",
                                  f"teacher.unroll={args.digits_teacher[1]}"]
            if name == SHARED_TEACHER and seed != args.seed_list[0]:
                teacher_run = os.path.join(work, "digits", f"{model}_{name}_seed{args.seed_list[0]}")
                command.insert(-1, f"teacher.path={teacher_run}/teacher.pt")
                after = (f"digits_{model}_{name}_seed{args.seed_list[0]}",)
            processes = MULTI_PROCESS.get(name.replace("aucpr_", ""), 1)
            if processes > 1:
                command = ["-m", "torch.distributed.run", "--standalone",
                           f"--nproc_per_node={processes}", "-m", *command[1:]]
            child = child_dir(run_dir, name.replace("aucpr_", ""))
            jobs.append(Job(f"digits_{model}_{name}_seed{seed}", [PYTHON, *command],
                            outputs=[os.path.join(child, "metrics.csv")], after=after, env=ONE_THREAD,
                            summary=lambda child=child, metric=metric: run_summary(child, metric)))
    return jobs


def toy_jobs(args, work: str) -> List[Job]:
    # BEST_METRIC=loss: the committed toy rows were selected by the criterion's loss (the
    # recipes now default to nll_loss); kept so that a re-run reproduces them.
    env = dict(ONE_THREAD, VENV_BIN=os.path.dirname(PYTHON), BEST_METRIC="loss")
    archs = {arch: (translation.ARCH_ARGS[arch], args.toy_updates[arch]) for arch in args.toy_archs}
    return translation.jobs("toy", work, REPO, env, "recipes/toy/prepare.sh", archs,
                            args.toy_methods, args.seed_list, args.seq_updates, args.teacher_steps)


# -- results -----------------------------------------------------------------------------------
def digits_tables(args, work: str) -> List[str]:
    """The digits tables, from the runs' summaries (``run_summary``) in the job records: a run
    restored from the archive (results/runs/) reports without its folder."""
    state = os.path.join(work, "state")
    summary = lambda model, name, seed: summary_of(state, f"digits_{model}_{name}_seed{seed}")
    sections = []
    for model in args.digits_models:
        rows = []
        for name in DIGITS_METHODS:
            if name not in args.digits_methods:
                continue
            summaries = [summary(model, name, seed) for seed in args.seed_list]
            values = [s["test_error"] for s in summaries]
            # Compute, not wall time: every child of a multi-network run costs as much.
            seconds = [s["training_seconds"] * MULTI_PROCESS.get(name, 1) for s in summaries]
            note = DIGITS_NOTES.get(name, "")
            if name in MULTI_PROCESS:
                note = (f"paper form; {MULTI_PROCESS[name]} children share one controller; "
                        "child 0 (this seed) reported")
            if name == SHARED_TEACHER:  # its teacher's training, spread over the seeds it teaches
                share = summaries[0]["teacher_seconds"] / len(args.seed_list)
                seconds = [value + share for value in seconds]
                note = ("paper form, episodic; one teacher (trained in the seed-1 run) for all "
                        "seeds; its time shared")
            row = MethodRow(name, values, seconds, note)
            control = next((r for r in rows if r.name == DIGITS_CONTROL.get(name)), None)
            if control is not None:
                row.note += ("; " if note else "") + versus_paired(row, control)
            rows.append(row)
        sections.append(f"### digits, {model}: test error % at the best-validation epoch "
                        f"({args.digits_epochs} epochs)\n\n"
                        + paired_table(rows, "ce", "test error %", lower_is_better=True)
                        + "\n\n" + verdict(rows, "ce", lower_is_better=True))
    if args.aucpr:
        rows = []
        for name in AUCPR_METHODS:
            summaries = [summary("mlp", "aucpr_" + name, seed) for seed in args.seed_list]
            rows.append(MethodRow(name, [s["test_aucpr"] for s in summaries],
                                  [s["training_seconds"] for s in summaries]))
        sections.append("### digits, mlp: test AUCPR (one-vs-rest, macro) at the best-validation "
                        "epoch\n\n" + paired_table(rows, "ce", "AUCPR %", lower_is_better=False)
                        + "\n\n" + verdict(rows, "ce", lower_is_better=False))
    return sections


# Under the toy part's LSTM table: why it does not judge a loss, and where the LSTM is judged.
TOY_LSTM_NOTE = ("*This LSTM setting (1000-token batches) cannot judge a loss: CE itself falls "
                 "into a basin on some seeds (validation loss 0.6-1.3 where aligned seeds reach "
                 "0.10-0.25; docs/investigation.md §4e), so a collapse here may be the seed's, not "
                 "the loss's. The `toy_lstm2k` part re-runs the LSTM with 2000-token batches "
                 "(chosen on CE's validation loss, §4g), where CE stalls on 1 seed of 10.*")


def toy_tables(args, work: str) -> List[str]:
    return [translation.table("toy", work, arch, args.toy_updates[arch], args.toy_methods,
                              args.seed_list, args.seq_updates)
            + ("\n\n" + TOY_LSTM_NOTE if arch == "lstm" else "") for arch in args.toy_archs]


# -- plots -------------------------------------------------------------------------------------
def make_plots(args, work: str, plots: str) -> List[Tuple[str, str]]:
    """PNG files: Phi over training (ALA), validation loss vs test error (CE vs ALA), and the
    teachers' dev objective over teacher steps. Returns (part, markdown image line) pairs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fairseq_dynloss.trainer.plots import plot_phi

    os.makedirs(plots, exist_ok=True)
    lines = []
    seed = args.seed_list[0]
    if "digits" in args.parts and "ala" in args.digits_methods:
        model = args.digits_models[0]
        runs = {name: os.path.join(work, "digits", f"{model}_{name}_seed{seed}")
                for name in ("ce", "ala")}
        path = os.path.join(plots, "digits_ala_phi_offdiag.png")
        checkpoint = os.path.join(runs["ala"], "checkpoint_last.pt")
        if os.path.exists(checkpoint):
            state = torch.load(checkpoint, weights_only=True)
            snapshots = {int(k): v - torch.diag(v.diagonal())
                         for k, v in state["phi_snapshots"].items()}
            plot_phi(path, snapshots)
        if os.path.exists(path):  # drawn now, or by the run that made the archived records
            lines.append(("digits", f"![ALA Phi (off-diagonal) over training, digits {model}, "
                                    f"seed {seed}]({path})"))

        path = os.path.join(plots, "digits_val_loss_vs_test_error.png")
        if all(os.path.exists(os.path.join(run, "metrics.csv")) for run in runs.values()):
            fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
            for name, run in runs.items():
                with open(os.path.join(run, "metrics.csv")) as h:
                    rows = list(csv.DictReader(h))
                epochs = [int(r["epoch"]) for r in rows]
                left.plot(epochs, [float(r["val_loss"]) for r in rows], label=name)
                right.plot(epochs, [float(r["test_error"]) for r in rows], label=name)
            left.set(xlabel="epoch", ylabel="validation cross-entropy", title="validation loss")
            right.set(xlabel="epoch", ylabel="test error %", title="test error")
            left.legend(), right.legend()
            fig.savefig(path, dpi=100, bbox_inches="tight")
            plt.close(fig)
        if os.path.exists(path):
            lines.append(("digits", f"![validation loss vs test error, CE vs ALA, digits {model}]({path})"))

    # The teachers' dev objective, one plot per part (drawn from the teacher logs when this
    # work folder has them; else the plot drawn by the run that made the archived records).
    logs = {"toy": [], "digits": []}
    if "toy" in args.parts:
        for arch in args.toy_archs:
            for method in ("l2t", "l2t_paper"):
                if method in args.toy_methods:
                    logs["toy"].append((f"toy {arch} {method}", os.path.join(
                        work, "toy", "checkpoints", translation.teacher_run(arch, method),
                        "teacher_log.csv")))
    if "digits" in args.parts and SHARED_TEACHER in args.digits_methods:
        for model in args.digits_models:
            logs["digits"].append((f"digits {model} {SHARED_TEACHER}", os.path.join(
                work, "digits", f"{model}_{SHARED_TEACHER}_seed{seed}", "teacher_log.csv")))
    for part, part_logs in logs.items():
        path = os.path.join(plots, f"{part}_teacher_dev_objective.png")
        if part_logs and all(os.path.exists(log) for _, log in part_logs):
            fig, ax = plt.subplots(figsize=(6, 3.6))
            for label, log in part_logs:
                with open(log) as handle:
                    rows = list(csv.DictReader(handle))
                ax.plot([float(r["dev_objective"]) for r in rows], label=label, alpha=0.8)
            ax.set(xlabel="teacher step", ylabel="dev objective (after the unroll)",
                   title=f"L2T-DLF teachers' dev objective ({part})")
            ax.legend()
            fig.savefig(path, dpi=100, bbox_inches="tight")
            plt.close(fig)
        if part_logs and os.path.exists(path):
            lines.append((part, f"![teacher dev objective over teacher steps ({part})]({path})"))
    return lines


def paper_scale_section() -> str:
    """docs/paper_scale.md (commands, paper numbers and costs per paper table) as a section."""
    with open(os.path.join(REPO, "docs", "paper_scale.md")) as handle:
        text = handle.read()
    body = text.split("\n", 1)[1]  # drop its title; its "##" sections become ours
    return "## At the papers' scale (docs/paper_scale.md)\n" + body.replace("\n## ", "\n### ")


PART_TITLES = {"digits": "digits (scikit-learn 8x8)", "toy": "toy translation",
               "toy_lstm2k": "toy translation, LSTM student with 2000-token batches",
               "mnist1d_reference": "MNIST-1D reference reproduction",
               "mnist1d": "MNIST-1D, clean and with label noise",
               "toy_hard": "toy_hard translation (room above CE)",
               "toy_hard_lstm": "toy_hard translation, LSTM student",
               "toy_hard_lstm4k": "toy_hard translation, LSTM student with 4000-token batches"}
PAIRED = ("Every method ran the same seeds, so the tables are paired: Δ = per-seed difference "
          "from CE (mean ± std), its 95 % bootstrap CI, the paired t-test and Wilcoxon "
          "signed-rank p-values, and MDD = the smallest true difference these seeds detect with "
          "80 % power (paired t, two-sided alpha 0.05): a 'n.s.' row whose MDD exceeds the "
          "effect you care about says nothing either way. 'gap closed' = (method - CE) / "
          "(forward-correction oracle - CE). time = training CPU time (teacher and controller "
          "work included; wall time for runs made before the trainer recorded CPU time) over CE's.")
REFERENCE = ("Every model: CE, seeds 1..N, test accuracy after the last update (nothing "
             "selected: there is no validation split); the bar is the published accuracy "
             f"± {mnist1d_reference.TOLERANCE:g} points.")
PAIRED_NO_ORACLE = PAIRED.split(" 'gap closed'")[0]
PART_STATISTICS = {
    "digits": PAIRED_NO_ORACLE + " time = training CPU time including controller and teacher-training "
              "work (not process start-up) over CE's.",
    "toy": PAIRED_NO_ORACLE + " " + translation.TIME_NOTE,
    "mnist1d": PAIRED, "mnist1d_reference": REFERENCE,
    "toy_hard": PAIRED_NO_ORACLE + " " + translation.TIME_NOTE,
    "toy_lstm2k": PAIRED_NO_ORACLE + " " + translation.TIME_NOTE,
    "toy_hard_lstm": PAIRED_NO_ORACLE + " " + translation.TIME_NOTE,
    "toy_hard_lstm4k": PAIRED_NO_ORACLE + " " + translation.TIME_NOTE}
PARTS = tuple(PART_TITLES)
# Translation parts of one architecture at fixed sizes: --<part>-methods / --<part>-seeds each.
SINGLE_ARCH = {part.name: part for part in (toy_lstm2k.PART, toy_hard_lstm.PART, toy_hard_lstm4k.PART)}
# Parts whose runs are not all archived yet: run only when named in --parts, so that a fresh
# clone's `python scripts/study.py` restores the finished parts instead of starting hours of jobs.
IN_PROGRESS: Tuple[str, ...] = ()


def part_of(job_name: str) -> str:
    """The part a job belongs to: the longest part name its name starts with
    (``toy_hard_lstm_ce_seed1`` is toy_hard's, ``toy_lstm_ce_seed1`` toy's)."""
    return max((part for part in PARTS if job_name.startswith(part + "_")), key=len, default="")


def atomic_write_text(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def assemble_results(out_dir: str) -> str:
    """RESULTS.md from the sections in ``<out_dir>/results/``: ``<part>.md``, or one
    ``<part>--<table>.md`` per table for parts whose tables regenerate separately (each written
    by the run that made it, so one part or table can be regenerated alone), and
    docs/paper_scale.md."""
    import glob

    sections = []
    for part in PARTS:
        files = sorted(glob.glob(os.path.join(out_dir, "results", f"{part}.md")) +
                       glob.glob(os.path.join(out_dir, "results", f"{part}--*.md")))
        if files:
            sections.append(f"## {PART_TITLES[part]}\n")
        for path in files:
            with open(path) as handle:
                sections.append(handle.read().rstrip() + "\n")
    return "\n".join([
        "# Results", "",
        "Generated by `scripts/study.py` — do not edit by hand; re-run it instead. Each part "
        "regenerates alone (`python scripts/study.py --parts PART`) into `results/`, and this file is "
        "assembled from those; the line above each table is the command and run that made it.", "",
        "Why L2T-DLF and ALA show no gain over CE or over their fixed-Phi control "
        "(`dynamic_fixed`) where they do not, and what the fixes changed: "
        "[docs/investigation.md](docs/investigation.md).", "",
        *sections,
        paper_scale_section(),
    ])


def main(argv: Sequence[str] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", nargs="+", default=[p for p in PARTS if p not in IN_PROGRESS],
                        choices=list(PARTS),
                        help="default: all" + (f" but {', '.join(IN_PROGRESS)} (in progress)" if IN_PROGRESS else ""))
    parser.add_argument("--seeds", type=int, default=10,
                        help="seeds 1..N per method of the digits and toy parts (>= 2)")
    parser.add_argument("--workers", type=int, default=2, help="jobs at a time (one thread each)")
    parser.add_argument("--work", default=os.path.join(REPO, "work", "study"))
    parser.add_argument("--out", default=os.path.join(REPO, "RESULTS.md"))
    parser.add_argument("--archive", default=None, metavar="DIR",
                        help="job records with the runs' results, kept across checkouts (default: "
                             "results/runs/ beside --out; commit it): an archived job is "
                             "restored instead of run. 'none' keeps nothing")
    parser.add_argument("--forget", nargs="+", default=[], metavar="GLOB",
                        help="job names (shell patterns, e.g. 'mnist1d_*_ala_seed*') whose records, "
                             "archived and local, are dropped so they run again: for a code change "
                             "that alters results without changing the command line")
    parser.add_argument("--plots", default="docs/img/study",
                        help="folder for PNGs, relative to the folder of --out")
    parser.add_argument("--digits-models", nargs="+", default=["mlp", "lenet"])
    parser.add_argument("--digits-methods", nargs="+", default=list(DIGITS_METHODS),
                        choices=list(DIGITS_METHODS))
    parser.add_argument("--digits-epochs", type=int, default=30)
    parser.add_argument("--digits-teacher", type=int, nargs=2, metavar=("STEPS", "UNROLL"),
                        default=[100, 50], help="L2T-DLF teacher steps and unrolled updates")
    parser.add_argument("--no-aucpr", dest="aucpr", action="store_false")
    parser.add_argument("--toy-archs", nargs="+", default=["transformer", "lstm"],
                        choices=list(TOY_UPDATES))
    parser.add_argument("--toy-methods", nargs="+", default=list(translation.METHODS),
                        choices=list(translation.ROWS))
    parser.add_argument("--seq-updates", type=int, default=50,
                        help="fine-tuning updates of the sequence-level criteria")
    parser.add_argument("--toy-updates", type=int, nargs=2, metavar=("TRANSFORMER", "LSTM"),
                        default=[TOY_UPDATES["transformer"], TOY_UPDATES["lstm"]],
                        help="training updates of the toy students")
    parser.add_argument("--teacher-steps", type=int, default=60,
                        help="L2T-DLF teacher steps on the toy corpus (unroll 3 each)")
    plan = "; ".join(f"{s} x {m}: {' '.join(rows)}" for (s, m), rows in mnist1d.PLAN.items())
    parser.add_argument("--mnist1d-settings", nargs="+", default=None, choices=list(mnist1d.NOISE),
                        help="default: the settings of the plan (fairseq_dynloss/study/mnist1d.py "
                             f"PLAN, sized to 150 min on 2 cores: {plan})")
    parser.add_argument("--mnist1d-models", nargs="+", default=None,
                        choices=["mnist1d_mlp", "mnist1d_cnn", "mnist1d_gru"],
                        help="default: the models of the plan")
    parser.add_argument("--mnist1d-methods", nargs="+", default=None,
                        choices=list(mnist1d.METHODS),
                        help="default: the plan's rows of each table; given: these rows in every table")
    parser.add_argument("--mnist1d-seeds", type=int, default=10, help="seeds 1..N (>= 2)")
    parser.add_argument("--mnist1d-steps", type=int, default=3000,
                        help="updates per MNIST-1D run (RESULTS.md's tables: 3000; the reference "
                             "schedule is 8000)")
    parser.add_argument("--mnist1d-lr", type=float, default=1e-2, help="Adam lr (reference: 1e-2)")
    parser.add_argument("--mnist1d-reference-seeds", type=int, default=mnist1d_reference.SEEDS,
                        help="seeds 1..N of the reference reproduction (>= 2)")
    for part in SINGLE_ARCH.values():
        flag = part.name.replace("_", "-")
        parser.add_argument(f"--{flag}-methods", nargs="+", default=list(part.methods),
                            choices=list(translation.ROWS))
        parser.add_argument(f"--{flag}-seeds", type=int, default=10, help="seeds 1..N (>= 2)")
    parser.add_argument("--toy-hard-methods", nargs="+", default=list(toy_hard.METHODS),
                        choices=list(toy_hard.METHODS))
    parser.add_argument("--toy-hard-seeds", type=int, default=10, help="seeds 1..N (>= 2)")
    parser.add_argument("--toy-hard-updates", type=int, default=toy_hard.UPDATES,
                        help="training updates of the toy_hard students")
    parser.add_argument("--toy-hard-seq-updates", type=int, default=toy_hard.SEQ_UPDATES,
                        help="fine-tuning updates of the toy_hard sequence-level rows")
    parser.add_argument("--toy-hard-teacher-steps", type=int, default=toy_hard.TEACHER_STEPS,
                        help="L2T-DLF teacher steps on toy_hard (unroll 3 each)")
    args = parser.parse_args(argv)
    if args.seeds < 2:
        parser.error(f"--seeds {args.seeds}: need >= 2 for a standard deviation and a t-test")
    if args.mnist1d_reference_seeds < 2:
        parser.error(f"--mnist1d-reference-seeds {args.mnist1d_reference_seeds}: need >= 2")
    if args.toy_hard_seeds < 2:
        parser.error(f"--toy-hard-seeds {args.toy_hard_seeds}: need >= 2 for a paired test")
    for name in SINGLE_ARCH:
        flag = name.replace("_", "-")
        if getattr(args, f"{name}_seeds") < 2:
            parser.error(f"--{flag}-seeds {getattr(args, f'{name}_seeds')}: need >= 2 for a paired test")
        if "ce" not in getattr(args, f"{name}_methods"):
            parser.error(f"--{flag}-methods must include ce (the baseline of every row)")
        setattr(args, f"{name}_seed_list", list(range(1, getattr(args, f"{name}_seeds") + 1)))
    if "ce" not in args.toy_hard_methods:
        parser.error("--toy-hard-methods must include ce (the baseline of every row)")
    if args.mnist1d_methods is not None and "ce" not in args.mnist1d_methods:
        parser.error("--mnist1d-methods must include ce (the baseline of every row)")
    if "ce" not in args.digits_methods:
        parser.error("--digits-methods must include ce (the baseline of every row)")
    args.seed_list = list(range(1, args.seeds + 1))
    args.mnist1d_seed_list = list(range(1, args.mnist1d_seeds + 1))
    args.toy_hard_seed_list = list(range(1, args.toy_hard_seeds + 1))
    args.mnist1d_reference_seed_list = list(range(1, args.mnist1d_reference_seeds + 1))
    args.toy_updates = dict(zip(["transformer", "lstm"], args.toy_updates))
    if "digits" not in args.parts:
        args.aucpr = False

    work = os.path.abspath(args.work)
    jobs = (digits_jobs(args, work) if "digits" in args.parts else []) + \
           (toy_jobs(args, work) if "toy" in args.parts else [])
    if "toy_hard" in args.parts:
        jobs += toy_hard.jobs(args, work, REPO, dict(ONE_THREAD, VENV_BIN=os.path.dirname(PYTHON)))
    for name, part in SINGLE_ARCH.items():
        if name in args.parts:
            jobs += part.jobs(getattr(args, f"{name}_methods"), getattr(args, f"{name}_seed_list"), work, REPO,
                              dict(ONE_THREAD, VENV_BIN=os.path.dirname(PYTHON)))
    if "mnist1d_reference" in args.parts:
        jobs += mnist1d_reference.jobs(args.mnist1d_reference_seed_list, work, PYTHON, ONE_THREAD)
    started = time.perf_counter()
    grid_choice = {}
    if "mnist1d" in args.parts:
        # phase 1: everything but the gridded baselines' chosen values on the later seeds
        mnist1d.write_sparse_matrix(work)
        jobs += mnist1d.jobs(args, work, PYTHON, ONE_THREAD)
    out_dir = os.path.dirname(os.path.abspath(args.out))
    archive = (None if args.archive == "none" else
               os.path.abspath(args.archive or os.path.join(out_dir, "results", "runs")))
    # records name these folders by placeholder, so a record matches its job in any checkout
    roots = {"<work>": work, "<repo>": REPO, "<python>": PYTHON,
             "<venv-bin>": os.path.dirname(PYTHON)}
    if args.forget:
        gone = forget_records([os.path.join(work, "state"), archive], args.forget)
        print(f"[study] forgot {len(gone)} job records matching {args.forget}")
    run = lambda some: run_jobs(some, os.path.join(work, "state"), workers=args.workers,
                                roots=roots, archive=archive)
    run(jobs)
    if "mnist1d" in args.parts:  # phase 2: the validation-chosen baselines on every seed
        grid_choice = mnist1d.choose_grid(args, work)
        more = mnist1d.jobs(args, work, PYTHON, ONE_THREAD, grid_choice)
        more = [job for job in more if job.name not in {j.name for j in jobs}]
        jobs += more
        run(more)
    elapsed = time.perf_counter() - started

    plot_lines = make_plots(args, work, os.path.join(out_dir, args.plots))
    command = "python scripts/study.py " + " ".join(sys.argv[1:] if argv is None else argv)
    tables = {"digits": lambda: digits_tables(args, work), "toy": lambda: toy_tables(args, work),
              "toy_hard": lambda: toy_hard.tables(args, work),
              **{name: (lambda part=part: part.tables(getattr(args, f"{part.name}_methods"),
                                                      getattr(args, f"{part.name}_seed_list"), work))
                 for name, part in SINGLE_ARCH.items()},
              "mnist1d_reference": lambda: [mnist1d_reference.table(
                  args.mnist1d_reference_seed_list, work)]}
    records = [load_record(os.path.join(work, "state"), job.name) for job in jobs]
    records = [record for record in records if record is not None]
    for part in args.parts:
        mine = [record for record in records if part_of(record.name) == part]
        job_minutes = sum(record.seconds for record in mine) / 60
        cpus = collections.Counter(record.cpu or "CPU not recorded" for record in mine)
        made_on = "; ".join(f"{cpu}: {count} jobs" for cpu, count in cpus.most_common())
        seeds = {"mnist1d": args.mnist1d_seed_list,
                 "toy_hard": args.toy_hard_seed_list,
                 **{name: getattr(args, f"{name}_seed_list") for name in SINGLE_ARCH},
                 "mnist1d_reference": args.mnist1d_reference_seed_list}.get(part, args.seed_list)
        lines = [line.replace(out_dir + os.sep, "") for tag, line in plot_lines if tag == part]
        header = (f"`{command.strip()}` — {datetime.date.today()}, {platform.machine()} CPU "
                  f"({os.cpu_count()} cores), torch {torch.__version__}; this part: {len(mine)} "
                  f"jobs, {job_minutes:.0f} min of job wall time in all, {args.workers} at a time "
                  f"with one thread each; this invocation ({len(jobs)} jobs) ran for "
                  f"{elapsed / 60:.1f} min (jobs "
                  f"finished earlier, or archived in results/runs/, were reused). Runs made on "
                  f"{made_on}. Seeds "
                  f"{seeds[0]}..{seeds[-1]}. {PART_STATISTICS[part]}")
        if part == "mnist1d":  # one file per table: runs of other settings keep theirs
            pieces = [(f"mnist1d--{setting}--{model}", [section])
                      for (setting, model), section in mnist1d.tables(args, work, grid_choice)]
        else:
            pieces = [(part, tables[part]())]
        for name, sections in pieces:
            text = "\n".join([
                header, "", *[section + "\n" for section in sections],
                *([f"#### Plots ({part})", "", *[line + "\n" for line in lines]] if lines else []),
            ])
            atomic_write_text(os.path.join(out_dir, "results", f"{name}.md"), text)
    atomic_write_text(args.out, assemble_results(out_dir))
    print(f"wrote {args.out} ({elapsed / 60:.1f} min)")


if __name__ == "__main__":
    main()
