"""The study's ``toy_hard`` part: every translation loss on the hard synthetic corpus, paired seeds.

The toy corpus is at its ceiling (transformer CE ~89 BLEU); the hard corpus
(``fairseq_dynloss/data/toy_hard_corpus.py``, ``recipes/toy_hard/``) leaves the toy transformer
far from it after the same few minutes of CPU, so a loss has room to help and every row is a
paired comparison with CE over the same seeds (``report.paired_table``). Jobs go through the toy
recipes' ``train.sh`` / ``evaluate.sh`` with ``WORK`` pointing at the part's own folder.

Rows: CE, label smoothing (eps 0.1, as the toy part), CE continued (the control of the
fine-tuned rows: the same extra updates with CE), the sequence-level criteria fine-tuned from each
seed's CE model, L2T-DLF (one teacher, trained once, then frozen) and ALA with the toy part's
arguments (paper form + 0.5 NLL). No ``--dynamic-form prob`` rows yet: with the bucketed Phi of
these rows the L2T teacher and the ALA controller both move B below zero within their first
steps, which the prob form refuses (``PhiError``). No row has a hyper-parameter tuned here:
nothing looks at test to choose anything.
"""

from __future__ import annotations

import json
import os
from typing import Dict, List

from .jobs import Job, load_record, summary_of
from .report import MethodRow, paired_table, verdict

ARCH = "transformer"  # the toy transformer of recipes/toy/common.sh
TEACHER = f"{ARCH}_l2t_teacher"
# Budget: the whole part (9 rows x 10 seeds, two single-threaded jobs at a time) must fit in
# 150 minutes on 2 cores. 1000 updates (the recipe: 1200, 47.5 BLEU) put CE near 40 BLEU and the
# part near 120 minutes by the estimate in recipes/toy_hard/README.md. Measured (session 7): ~30
# min of wall time per seed with two workers, ~5 h for 10 seeds -- the part does not fit yet; ALA
# was a third of it, and since session 8 measures its reward at the window end only (ALA_TOY).
UPDATES = 1000
SEQ_UPDATES = 50
TEACHER_STEPS = 60
METHODS = ["ce", "label_smoothing", "ce_continued", "expected_bleu", "reinforce", "actor_critic",
           "softmax_margin", "l2t", "ala"]
NOTES = {"label_smoothing": "eps 0.1 (as the toy part; not tuned)",
         "l2t": "paper form + 0.5 NLL; one teacher, its time shared over seeds",
         "ala": "paper form + 0.5 NLL"}

# The end of the part's statistics line (the paired columns are explained by the study's text).
TIME_NOTE = ("time = job wall time of everything a row needs (the CE model a fine-tuned row "
             "starts from, its share of a shared teacher, the test-set decoding) over CE's.")


def result_path(work: str, name: str) -> str:
    return os.path.join(work, "toy_hard", "results", f"{name}.bleu.json")


def run_name(method: str, seed: int) -> str:
    return f"{ARCH}_{method}_seed{seed}"


def jobs(args, work: str, repo: str, env: Dict[str, str], toy: Dict[str, object]) -> List[Job]:
    """Every job of the part.

    Args:
        args: the study's arguments (``toy_hard_methods``, ``toy_hard_seed_list``,
            ``toy_hard_updates``, ``toy_hard_seq_updates``, ``toy_hard_teacher_steps``).
        work: the study's work folder; this part writes ``<work>/toy_hard/``.
        repo: the repository root (for ``recipes/``).
        env: extra environment of every job (threads, ``VENV_BIN``).
        toy: the toy part's settings, shared rather than copied: ``finetuned`` ({method:
            (criterion, extra args)}), ``finetune`` (fine-tuning args), ``l2t_phi``,
            ``l2t_teacher`` (format string with ``phi`` and ``updates``), ``ala`` (format
            string with ``phi``) and ``state_dim``.
    """
    part_work = os.path.join(work, "toy_hard")
    toy_recipes = os.path.join(repo, "recipes", "toy")
    env = dict(env, WORK=part_work)
    methods = args.toy_hard_methods
    updates = args.toy_hard_updates
    finetuned = {m: spec for m, spec in toy["finetuned"].items() if m in methods}

    def train_and_score(name, criterion, n_updates, extra, after, seed):
        script = (f"MAX_UPDATE={n_updates} SEED={seed} bash {toy_recipes}/train.sh {name} {ARCH} "
                  f"{criterion} {extra} && bash {toy_recipes}/evaluate.sh {name}")
        # a changed command must not resume the old checkpoint (train.sh resumes a finished one)
        return Job(f"toy_hard_{name}", ["bash", "-c", script], [result_path(work, name)],
                   tuple(after), env, clean=[os.path.join(part_work, "checkpoints", name)],
                   summary=lambda: bleu_summary(result_path(work, name)))

    prepare = Job("toy_hard_prepare", ["bash", os.path.join(repo, "recipes", "toy_hard", "prepare.sh")],
                  [os.path.join(part_work, "data-bin", ".done")], env=env, summary=dict)
    out = [prepare]
    teacher_dir = os.path.join(part_work, "checkpoints", TEACHER)
    if "l2t" in methods:  # one teacher, trained once, then frozen
        extra = toy["l2t_teacher"].format(phi=toy["l2t_phi"], updates=updates)
        script = (f"MAX_UPDATE={args.toy_hard_teacher_steps * 3} SEED=1 bash "
                  f"{toy_recipes}/train.sh {TEACHER} {ARCH} dynamic_loss {extra}")
        out.append(Job(f"toy_hard_{TEACHER}", ["bash", "-c", script],
                       [os.path.join(teacher_dir, "teacher.pt")], (prepare.name,), env,
                       clean=[teacher_dir], summary=dict))  # its record: the students' time share
    for seed in args.toy_hard_seed_list:
        ce = run_name("ce", seed)
        if "ce" in methods or finetuned:
            out.append(train_and_score(ce, "ce", updates, "", [prepare.name], seed))
        if "label_smoothing" in methods:
            out.append(train_and_score(run_name("label_smoothing", seed),
                                       "label_smoothed_cross_entropy", updates,
                                       "--label-smoothing 0.1", [prepare.name], seed))
        for method, (criterion, extra) in finetuned.items():
            start = os.path.join(part_work, "checkpoints", ce, "checkpoint_best.pt")
            extra = (f"--finetune-from-model {start} {toy['finetune']} "
                     + extra.format(state_dim=toy["state_dim"]))
            out.append(train_and_score(run_name(method, seed), criterion,
                                       args.toy_hard_seq_updates, extra, [f"toy_hard_{ce}"], seed))
        if "l2t" in methods:
            extra = (f"{toy['l2t_phi']} --phi-source teacher --teacher-path "
                     f"{os.path.join(teacher_dir, 'teacher.pt')}")
            out.append(train_and_score(run_name("l2t", seed), "dynamic_loss", updates, extra,
                                       [f"toy_hard_{TEACHER}"], seed))
        if "ala" in methods:
            out.append(train_and_score(run_name("ala", seed), "dynamic_loss", updates,
                                       toy["ala"].format(phi=toy["l2t_phi"]), [prepare.name], seed))
    return out


def bleu_summary(path: str) -> dict:
    """The archived result of a scored run: ``evaluate.sh``'s sacrebleu score."""
    with open(path) as handle:
        return {"score": float(json.load(handle)["score"])}


def seconds_of(work: str, job: str) -> float:
    record = load_record(os.path.join(work, "state"), job)
    return record.seconds if record else float("nan")


def tables(args, work: str, finetuned_methods) -> List[str]:
    """One paired table: sacrebleu BLEU on test, per seed, vs CE (``TIME_NOTE``)."""
    rows = []
    seeds = args.toy_hard_seed_list
    for method in METHODS:
        if method not in args.toy_hard_methods and not (method == "ce" and any(
                m in finetuned_methods for m in args.toy_hard_methods)):
            continue
        values, seconds = [], []
        for seed in seeds:
            name = run_name(method, seed)
            values.append(summary_of(os.path.join(work, "state"), f"toy_hard_{name}")["score"])
            spent = seconds_of(work, f"toy_hard_{name}")
            if method in finetuned_methods:
                spent += seconds_of(work, f"toy_hard_{run_name('ce', seed)}")
            if method == "l2t":
                spent += seconds_of(work, f"toy_hard_{TEACHER}") / len(seeds)
            seconds.append(spent)
        note = NOTES.get(method, "")
        if method == "ce_continued":
            note = f"control: CE fine-tuned {args.toy_hard_seq_updates} more updates"
        elif method in finetuned_methods:
            note = f"fine-tuned {args.toy_hard_seq_updates} updates from CE (compare ce_continued)"
        rows.append(MethodRow(method, values, seconds, note))
    return [f"### toy_hard translation, {ARCH} ({args.toy_hard_updates} updates): sacrebleu "
            f"BLEU on test\n\n" + paired_table(rows, "ce", "BLEU", lower_is_better=False)
            + "\n\n" + verdict(rows, "ce", lower_is_better=False)]
