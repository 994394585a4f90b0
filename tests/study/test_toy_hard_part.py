"""The study's toy_hard part: its jobs (fine-tuned rows start from their own seed's CE model, one
L2T teacher for every seed) and, end to end on a tiny corpus, a table whose numbers are the runs'
own sacrebleu scores."""

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

from fairseq_dynloss.study import toy_hard
from fairseq_dynloss.study.stats import summarize

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOY = dict(finetuned={"ce_continued": ("ce", ""), "reinforce": ("reinforce_bleu", "--dim {state_dim}")},
           finetune="--lr 0.0005", l2t_phi="--phi-buckets 8", ala="--task translation_ala {phi}",
           l2t_teacher="--task translation_l2t {phi} --teacher-horizon {updates}", state_dim=64)


def make_jobs(methods, seeds=(1, 2)):
    args = SimpleNamespace(toy_hard_methods=methods, toy_hard_seed_list=list(seeds),
                           toy_hard_updates=700, toy_hard_seq_updates=30, toy_hard_teacher_steps=5)
    return {job.name: job for job in toy_hard.jobs(args, "/w", REPO, {"OMP_NUM_THREADS": "1"}, TOY)}


def test_finetuned_rows_start_from_their_own_seeds_ce_model():
    jobs = make_jobs(["reinforce"])
    # CE is trained for the fine-tuned rows even when not asked for as a row
    assert set(jobs) == {"toy_hard_prepare", *(f"toy_hard_transformer_{m}_seed{s}"
                                                for m in ("ce", "reinforce") for s in (1, 2))}
    for seed in (1, 2):
        job = jobs[f"toy_hard_transformer_reinforce_seed{seed}"]
        assert job.after == (f"toy_hard_transformer_ce_seed{seed}",)
        script = job.command[-1]
        assert f"--finetune-from-model /w/toy_hard/checkpoints/transformer_ce_seed{seed}/checkpoint_best.pt" in script
        assert "MAX_UPDATE=30 " in script and f"SEED={seed} " in script and "--dim 64" in script
        assert job.env["WORK"] == "/w/toy_hard"


def test_one_teacher_trained_once_teaches_every_seed():
    jobs = make_jobs(["l2t", "ala"])
    teacher = jobs["toy_hard_transformer_l2t_teacher"]
    assert [name for name in jobs if "teacher" in name] == [teacher.name]
    assert teacher.after == ("toy_hard_prepare",)
    assert "MAX_UPDATE=15 " in teacher.command[-1]  # 5 teacher steps x 3 unrolled updates
    assert "--teacher-horizon 700" in teacher.command[-1]  # the students' length
    for seed in (1, 2):
        student = jobs[f"toy_hard_transformer_l2t_seed{seed}"]
        assert student.after == (teacher.name,)
        assert "--teacher-path /w/toy_hard/checkpoints/transformer_l2t_teacher/teacher.pt" in student.command[-1]
        assert "--task translation_ala --phi-buckets 8" in jobs[f"toy_hard_transformer_ala_seed{seed}"].command[-1]


@pytest.mark.slow
def test_study_toy_hard_part_tiny(tmp_path):
    """2 seeds, CE and CE continued, a few updates on a tiny hard corpus: the table's rows are the
    runs' own BLEU scores, paired with CE."""
    command = [sys.executable, os.path.join(REPO, "scripts", "study.py"), "--parts", "toy_hard",
               "--toy-hard-seeds", "2", "--toy-hard-updates", "20", "--toy-hard-seq-updates", "5",
               "--toy-hard-methods", "ce", "ce_continued", "--workers", "1",
               "--work", str(tmp_path / "work"), "--out", str(tmp_path / "RESULTS.md")]
    env = dict(os.environ, OMP_NUM_THREADS="1", TRAIN_PAIRS="300", VALID_PAIRS="20",
               TEST_PAIRS="20", SPM_VOCAB="200")
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    results = tmp_path / "work" / "toy_hard" / "results"
    text = (tmp_path / "results" / "toy_hard.md").read_text()
    assert text in (tmp_path / "RESULTS.md").read_text()
    bleu = {m: [json.load(open(results / f"transformer_{m}_seed{s}.bleu.json"))["score"]
                for s in (1, 2)] for m in ("ce", "ce_continued")}
    for method, values in bleu.items():
        line = next(l for l in text.splitlines() if l.startswith(f"| {method} |"))
        s = summarize(values)
        assert f"{s.mean:.2f} ± {s.std:.2f}" in line
    diffs = summarize([b - a for a, b in zip(bleu["ce"], bleu["ce_continued"])])
    line = next(l for l in text.splitlines() if l.startswith("| ce_continued |"))
    assert f"{diffs.mean:+.2f}" in line
