"""The study's translation parts (``toy`` and ``toy_hard``): one job builder and one table for both.

Every job goes through ``recipes/toy/train.sh`` / ``evaluate.sh`` with ``WORK`` pointing at the
part's own folder (``<work>/<part>/``), so the two corpora differ only in their prepare script,
their architectures and their sizes. A job is named ``<part>_<arch>_<method>_seed<s>`` and writes
``<work>/<part>/results/<arch>_<method>_seed<s>.bleu.json`` (sacrebleu on test); its archived
summary (``study/jobs.py``) is that score, so a table is built from job records alone.

Rows (``METHODS``):

* ``ce``, ``label_smoothing`` (eps 0.1, not tuned);
* ``dynamic_fixed``: the dynamic-loss criterion at a fixed Phi = I in the prob form (CE in exact
  arithmetic): how far the taught rows' seeds move from CE's by rounding alone;
* the sequence-level criteria fine-tuned from each seed's CE model (``FINETUNED``), with
  ``ce_continued`` (CE for the same extra updates) as their control;
* ``l2t`` / ``l2t_paper``: L2T-DLF, one teacher per architecture and form (trained once with
  seed 1, then frozen) teaching every seed;
* ``l2t_init`` (an optional control, ``CONTROLS``): ``l2t``'s students taught by its teacher
  *untrained* (``scripts/untrained_teacher.py``): what the teacher's starting point does alone;
* ``ala`` / ``ala_paper``: ALA (``tasks/translation_ala.py`` at its defaults).

``l2t`` and ``ala`` use the prob form (``--dynamic-form prob``), as the ``mnist1d`` part does;
the ``_paper`` rows the papers' form. Both mix the dynamic loss with NLL (``DYNAMIC_PHI``).
Nothing here is tuned on test.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

from .jobs import Job, load_record, summary_of
from .report import MethodRow, collapses, paired_table, verdict, versus_paired

# fairseq-train arguments of every job of an architecture, after recipes/toy/common.sh's (the
# last occurrence of an option wins; the fine-tuning rows' own --lr/--warmup-updates/--max-tokens
# come later still). LSTM (docs/investigation.md): with common.sh's lr 0.003, warmup 200,
# max-tokens 2000 and 1000 updates, each seed stopped at a different point of the slow drop of
# the validation loss (0.67..1.38) when attention learns the alignment: CE 37.0 +- 17.1 BLEU.
# Twice as many updates of half the batch at lr 0.01 (warmup 100, gradients clipped at norm 1)
# cost about the same and get every CE seed past it.
ARCH_ARGS = {"transformer": "",
             "lstm": "--lr 0.01 --warmup-updates 100 --clip-norm 1.0 --max-tokens 1000"}
STATE_DIM = {"transformer": 64, "lstm": 128}  # decoder output dims in recipes/toy/common.sh
FINETUNE = "--lr 0.0005 --warmup-updates 1 --max-tokens 1000"
# name -> (criterion, extra args); fine-tuned from the same seed's CE checkpoint.
FINETUNED = {
    "ce_continued": ("ce", ""),
    "expected_bleu": ("expected_bleu", "--seq-candidates 8 --seq-alpha 0.2 --nll-weight 0.1"),
    "reinforce": ("reinforce_bleu", "--seq-candidates 4 --reinforce-baseline learned "
                                    "--decoder-state-dim {state_dim} --nll-weight 0.1"),
    "actor_critic": ("actor_critic_bleu", "--seq-candidates 4 --decoder-state-dim {state_dim} "
                                          "--nll-weight 0.3"),
    "softmax_margin": ("softmax_margin", "--seq-candidates 4 --nll-weight 0.3"),
}
# The dynamic loss mixed with NLL (0.5) for L2T-DLF and ALA, as on digits: with the plain paper
# form both collapse on the toy corpus (recipes/toy/l2t.sh: taught students 0.0 BLEU;
# recipes/toy/ala.sh: ALA 46.4 +- 27.5 vs CE 89.3) because negative off-diagonal entries push
# whole buckets down. The prob rows keep the same mix so that the two forms differ in one thing.
DYNAMIC_PHI = "--phi-parametrisation bucketed --phi-buckets 8 --nll-weight 0.5"
# row -> loss form of the dynamic-loss rows. dynamic_fixed is their control: the prob form at
# its --phi-init (Phi = I), which is cross-entropy in exact arithmetic, so the row differs from
# CE only by rounding and by the criterion's code path.
FORMS = {"dynamic_fixed": "prob", "l2t": "prob", "l2t_paper": "paper", "ala": "prob",
         "ala_paper": "paper"}
# The unroll steps with the student's own optimiser (--inner-optimizer twin: fairseq's Adam with
# the recipe's betas, the scheduler's warm-up rates and --clip-norm), not a fresh Adam at another
# lr: what the teacher learns about a step then transfers to the deployed student (issue 16).
L2T_TEACHER = ("--task translation_l2t {phi} --teacher-mode episodic --unroll-steps 3 "
               "--inner-optimizer twin --teacher-lr 0.005 "
               "--teacher-horizon {updates} --teacher-dev-batches 2 "
               "--teacher-dev-max-sentences 32 --disable-validation --max-tokens 1000")
# The BLEU reward measured at each window's end only (--ala-metric-every = --ala-interval = 20),
# as dynloss-train's default: measuring after every update decoded the dev subset 1000 times per
# toy_hard run, 2.6-3.7x CE's cost (recipes/toy_hard/README.md), the part's largest row.
ALA = "--task translation_ala --phi-source ala --ala-metric-every 20 {phi}"
METHODS = ["ce", "label_smoothing", *FINETUNED, *FORMS]
# Rows a part may add to METHODS. l2t_init: the l2t row with the teacher file replaced by the
# same teacher untrained, deployed by the same code; l2t is compared with it paired.
CONTROLS = ["l2t_init"]
# Every row a part may run, in the tables' order (the control just above the row it controls).
ROWS = METHODS[:METHODS.index("l2t")] + CONTROLS + METHODS[METHODS.index("l2t"):]
NOTES = {"label_smoothing": "eps 0.1 (not tuned)",
         "dynamic_fixed": "control: prob form at Phi = I (= CE in exact arithmetic) + 0.5 NLL",
         "l2t": "prob form + 0.5 NLL; one teacher, its time shared over seeds",
         "l2t_init": "control: l2t's teacher untrained (its Phi_t at initialisation)",
         "l2t_paper": "paper form + 0.5 NLL; one teacher, its time shared over seeds",
         "ala": "prob form + 0.5 NLL", "ala_paper": "paper form + 0.5 NLL"}
# The end of the parts' statistics line (the paired columns are explained by the study's text).
TIME_NOTE = ("time = job wall time of everything a row needs (the CE model a fine-tuned row "
             "starts from, its share of a shared teacher, the test-set decoding) over CE's.")


def phi_args(method: str) -> str:
    """The dynamic-loss arguments of an L2T-DLF or ALA row (``FORMS``)."""
    return DYNAMIC_PHI + (" --dynamic-form prob" if FORMS[method] == "prob" else "")


def teacher_run(arch: str, method: str) -> str:
    """The run (checkpoint folder) of the teacher of an L2T-DLF row: ``lstm_l2t_teacher``."""
    return f"{arch}_{method}_teacher"


def result_path(part_work: str, name: str) -> str:
    return os.path.join(part_work, "results", f"{name}.bleu.json")


def bleu_summary(path: str) -> dict:
    """The archived result of a scored run: ``evaluate.sh``'s sacrebleu score."""
    with open(path) as handle:
        return {"score": float(json.load(handle)["score"])}


def seconds_of(work: str, job: str) -> float:
    record = load_record(os.path.join(work, "state"), job)
    return record.seconds if record else float("nan")


def needs_ce(methods: Sequence[str]) -> bool:
    """CE is trained when asked for, and for the rows fine-tuned from it."""
    return "ce" in methods or any(m in FINETUNED for m in methods)


def jobs(part: str, work: str, repo: str, env: Dict[str, str], prepare: str,
         archs: Dict[str, Tuple[str, int]], methods: Sequence[str], seeds: Sequence[int],
         seq_updates: int, teacher_steps: int) -> List[Job]:
    """Every job of a translation part.

    Args:
        part: ``toy`` or ``toy_hard``: the prefix of the job names and the part's folder.
        work: the study's work folder; the part writes ``<work>/<part>/``.
        repo: the repository root (for ``recipes/``).
        env: extra environment of every job (threads, ``VENV_BIN``, ...).
        prepare: the part's data script, relative to ``repo`` (``recipes/toy/prepare.sh``).
        archs: {architecture: (its fairseq-train arguments, training updates)}.
        methods: rows (``METHODS``) to run.
        seeds: the paired seeds.
        seq_updates: fine-tuning updates of the ``FINETUNED`` rows.
        teacher_steps: L2T-DLF teacher steps (3 unrolled updates each).
    """
    part_work = os.path.join(work, part)
    recipes = os.path.join(repo, "recipes", "toy")
    env = dict(env, WORK=part_work)

    def train_and_score(name, arch, criterion, updates, extra, after, seed, before=""):
        script = (f"{before}MAX_UPDATE={updates} SEED={seed} bash {recipes}/train.sh {name} {arch} "
                  f"{criterion} {archs[arch][0]} {extra} && bash {recipes}/evaluate.sh {name}")
        # a changed command must not resume the old checkpoint (train.sh resumes a finished one)
        return Job(f"{part}_{name}", ["bash", "-c", script], [result_path(part_work, name)],
                   tuple(after), env, clean=[os.path.join(part_work, "checkpoints", name)],
                   summary=lambda: bleu_summary(result_path(part_work, name)))

    prepare_job = Job(f"{part}_prepare", ["bash", os.path.join(repo, prepare)],
                      [os.path.join(part_work, "data-bin", ".done")], env=env, summary=dict)
    out = [prepare_job]
    for arch, (arch_args, updates) in archs.items():
        teachers = {}
        taught = {"l2t", "l2t_paper"} & set(methods) | ({"l2t"} if "l2t_init" in methods else set())
        for method in sorted(taught):
            # one teacher per architecture and form, trained once, then frozen
            name = teacher_run(arch, method)
            teachers[method] = os.path.join(part_work, "checkpoints", name, "teacher.pt")
            script = (f"MAX_UPDATE={teacher_steps * 3} SEED=1 bash {recipes}/train.sh {name} "
                      f"{arch} dynamic_loss {arch_args} "
                      + L2T_TEACHER.format(phi=phi_args(method), updates=updates))
            out.append(Job(f"{part}_{name}", ["bash", "-c", script], [teachers[method]],
                           (prepare_job.name,), env, clean=[os.path.dirname(teachers[method])],
                           summary=dict))  # its record: the students' time share
        for seed in seeds:
            ce = f"{arch}_ce_seed{seed}"
            run = lambda method: f"{arch}_{method}_seed{seed}"
            if needs_ce(methods):
                out.append(train_and_score(ce, arch, "ce", updates, "", [prepare_job.name], seed))
            if "label_smoothing" in methods:
                out.append(train_and_score(run("label_smoothing"), arch,
                                           "label_smoothed_cross_entropy", updates,
                                           "--label-smoothing 0.1", [prepare_job.name], seed))
            for method, (criterion, extra) in FINETUNED.items():
                if method in methods:
                    start = os.path.join(part_work, "checkpoints", ce, "checkpoint_best.pt")
                    extra = (f"--finetune-from-model {start} {FINETUNE} "
                             + extra.format(state_dim=STATE_DIM[arch]))
                    out.append(train_and_score(run(method), arch, criterion, seq_updates, extra,
                                               [f"{part}_{ce}"], seed))
            if "dynamic_fixed" in methods:
                out.append(train_and_score(run("dynamic_fixed"), arch, "dynamic_loss", updates,
                                           phi_args("dynamic_fixed"), [prepare_job.name], seed))
            if "l2t_init" in methods:
                # the l2t teacher as it was before training: the initialisation of its seed,
                # translation_l2t's default --teacher-seed (1), which L2T_TEACHER keeps
                untrained = os.path.join(part_work, "checkpoints", run("l2t_init"), "teacher_untrained.pt")
                before = (f"mkdir -p {os.path.dirname(untrained)} && \"${{VENV_BIN}}/python\" "
                          f"{repo}/scripts/untrained_teacher.py {teachers['l2t']} {untrained} "
                          "--seed 1 && ")
                extra = f"{phi_args('l2t')} --phi-source teacher --teacher-path {untrained}"
                out.append(train_and_score(run("l2t_init"), arch, "dynamic_loss", updates, extra,
                                           [f"{part}_{teacher_run(arch, 'l2t')}"], seed, before))
            for method, path in teachers.items():
                if method not in methods:  # trained for l2t_init only
                    continue
                extra = f"{phi_args(method)} --phi-source teacher --teacher-path {path}"
                out.append(train_and_score(run(method), arch, "dynamic_loss", updates, extra,
                                           [f"{part}_{teacher_run(arch, method)}"], seed))
            for method in (m for m in ("ala", "ala_paper") if m in methods):
                out.append(train_and_score(run(method), arch, "dynamic_loss", updates,
                                           ALA.format(phi=phi_args(method)),
                                           [prepare_job.name], seed))
    return out


def table(part: str, work: str, arch: str, updates: int, methods: Sequence[str],
          seeds: Sequence[int], seq_updates: int) -> str:
    """One paired table: sacrebleu BLEU on test, per seed, vs CE (``TIME_NOTE``); the fine-tuned
    rows are also compared with ``ce_continued``, the same extra training with CE."""
    state = os.path.join(work, "state")
    rows = []
    for method in ROWS:
        if method not in methods and not (method == "ce" and needs_ce(methods)):
            continue
        values, seconds = [], []
        for seed in seeds:
            job = f"{part}_{arch}_{method}_seed{seed}"
            values.append(summary_of(state, job)["score"])
            spent = seconds_of(work, job)
            if method in FINETUNED:  # the CE model it starts from is part of its cost
                spent += seconds_of(work, f"{part}_{arch}_ce_seed{seed}")
            if method in ("l2t", "l2t_paper"):  # the shared teacher, spread over its seeds
                spent += seconds_of(work, f"{part}_{teacher_run(arch, method)}") / len(seeds)
            seconds.append(spent)
        row = MethodRow(method, values, seconds, NOTES.get(method, ""))
        if method == "l2t" and "l2t_init" in methods:  # what the teacher's training added
            control = next(r for r in rows if r.name == "l2t_init")
            row.note += "; " + versus_paired(row, control)
        if method == "ce_continued":
            row.note = f"control: CE fine-tuned {seq_updates} more updates"
        elif method in FINETUNED:
            row.note = f"fine-tuned {seq_updates} updates from CE"
            control = next((r for r in rows if r.name == "ce_continued"), None)
            if control is not None:  # the fair comparison: the same extra training with CE
                row.note += "; " + versus_paired(row, control)
        rows.append(row)
    return (f"### {part} translation, {arch} ({updates} updates): sacrebleu BLEU on test\n\n"
            + paired_table(rows, "ce", "BLEU", lower_is_better=False)
            + "\n\n" + verdict(rows, "ce", lower_is_better=False)
            + "\n\n" + collapses(rows, "ce", seeds, lower_is_better=False))


@dataclass(frozen=True)
class SingleArchPart:
    """A translation part of one architecture at fixed sizes (``toy_lstm2k``, ``toy_hard_lstm``):
    the jobs and the table above, with the rows and seeds a study run asks for.

    Args:
        name: the part, the prefix of its job names and its folder under the work folder.
        prepare: its data script, relative to the repository.
        arch: the student architecture (``recipes/toy/common.sh``).
        arch_args: its fairseq-train arguments (after common.sh's; the last occurrence wins).
        updates: training updates of every student.
        methods: the default rows (``ROWS``).
        seq_updates: fine-tuning updates of the ``FINETUNED`` rows.
        teacher_steps: L2T-DLF teacher steps (3 unrolled updates each).
    """

    name: str
    prepare: str
    arch: str
    arch_args: str
    updates: int
    methods: Tuple[str, ...]
    seq_updates: int = 50
    teacher_steps: int = 60

    def jobs(self, methods: Sequence[str], seeds: Sequence[int], work: str, repo: str,
             env: Dict[str, str]) -> list:
        """Every job; the part writes ``<work>/<name>/``."""
        return jobs(self.name, work, repo, env, self.prepare, {self.arch: (self.arch_args, self.updates)},
                    methods, seeds, self.seq_updates, self.teacher_steps)

    def tables(self, methods: Sequence[str], seeds: Sequence[int], work: str) -> List[str]:
        """One paired table: sacrebleu BLEU on test, per seed, vs CE (``TIME_NOTE``)."""
        return [table(self.name, work, self.arch, self.updates, methods, seeds, self.seq_updates)]
