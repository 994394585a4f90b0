"""The study's toy_hard part (``study/translation.py``'s jobs on the hard corpus): its jobs
(fine-tuned rows start from their own seed's CE model, one L2T teacher per form for every seed,
each row in its own loss form) and, end to end on a tiny corpus, a table whose numbers are the runs'
own sacrebleu scores."""

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

from fairseq_dynloss.study import toy_hard, translation
from fairseq_dynloss.study.stats import summarize

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def make_jobs(methods, seeds=(1, 2)):
    args = SimpleNamespace(toy_hard_methods=methods, toy_hard_seed_list=list(seeds),
                           toy_hard_updates=700, toy_hard_seq_updates=30, toy_hard_teacher_steps=5)
    return {job.name: job for job in toy_hard.jobs(args, "/w", REPO, {"OMP_NUM_THREADS": "1"})}


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
        assert "MAX_UPDATE=30 " in script and f"SEED={seed} " in script
        assert "--decoder-state-dim 64" in script  # the transformer's decoder output
        assert job.env["WORK"] == "/w/toy_hard"


def test_one_teacher_per_form_trained_once_teaches_every_seed_in_its_form():
    jobs = make_jobs(["l2t", "l2t_paper", "ala", "ala_paper"])
    teachers = [name for name in jobs if "teacher" in name]
    assert teachers == ["toy_hard_transformer_l2t_teacher", "toy_hard_transformer_l2t_paper_teacher"]
    for method in ("l2t", "l2t_paper"):
        teacher = jobs[f"toy_hard_transformer_{method}_teacher"]
        assert teacher.after == ("toy_hard_prepare",)
        assert "MAX_UPDATE=15 " in teacher.command[-1]  # 5 teacher steps x 3 unrolled updates
        assert "--teacher-horizon 700" in teacher.command[-1]  # the students' length
        for seed in (1, 2):
            student = jobs[f"toy_hard_transformer_{method}_seed{seed}"]
            assert student.after == (teacher.name,)
            assert (f"--teacher-path /w/toy_hard/checkpoints/transformer_{method}_teacher/teacher.pt"
                    in student.command[-1])
    for seed in (1, 2):  # the form: prob for l2t / ala, the papers' for the _paper rows
        for method in ("l2t", "l2t_paper", "ala", "ala_paper"):
            script = jobs[f"toy_hard_transformer_{method}_seed{seed}"].command[-1]
            assert ("--dynamic-form prob" in script) == (not method.endswith("_paper")), method
            assert translation.DYNAMIC_PHI in script
        assert "--task translation_ala" in jobs[f"toy_hard_transformer_ala_seed{seed}"].command[-1]
    for method in ("l2t", "l2t_paper"):  # a teacher is trained in the form it teaches
        teacher = jobs[f"toy_hard_transformer_{method}_teacher"].command[-1]
        assert ("--dynamic-form prob" in teacher) == (method == "l2t")


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
