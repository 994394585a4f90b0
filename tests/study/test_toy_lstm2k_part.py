"""The study's toy_lstm2k part: the toy part's jobs for the LSTM with the recipe's 2000-token
batches (the one argument that differs), the rows not cut for the budget plus l2t_init, archived
records that match the jobs the part defines now; and toy_hard_lstm, the same student on the hard
corpus, and toy_hard_lstm4k, that student with 4000-token batches."""

import os
import sys
from types import SimpleNamespace

import pytest

from fairseq_dynloss.study import toy_hard_lstm, toy_hard_lstm4k, toy_lstm2k, translation
from fairseq_dynloss.study.jobs import JobRecord, write_record

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "scripts"))
import study  # noqa: E402
from archive_check import WORK, assert_archive_matches  # noqa: E402


def part_jobs(work, seeds=range(1, 11), part=toy_lstm2k.PART, methods=None):
    """{name: job} of ``part``'s rows (``methods``, default the part's own) and seeds."""
    env = dict(study.ONE_THREAD, VENV_BIN=os.path.dirname(study.PYTHON))
    return {job.name: job for job in part.jobs(methods or part.methods, list(seeds), work, REPO, env)}


def test_the_toy_parts_lstm_rows_with_2000_token_batches():
    jobs = part_jobs("/w", seeds=(1, 2))
    assert not set(toy_lstm2k.CUT) & set(toy_lstm2k.METHODS) and "ce" in toy_lstm2k.METHODS
    assert not any(cut in name for name in jobs for cut in toy_lstm2k.CUT)
    toy = study.toy_jobs(SimpleNamespace(
        toy_archs=["lstm"], toy_methods=translation.ROWS, seed_list=[1, 2],
        toy_updates=study.TOY_UPDATES, teacher_steps=60, seq_updates=50), "/w")
    toy = {job.name[len("toy_"):]: job for job in toy}
    for name, job in jobs.items():
        assert study.part_of(name) == "toy_lstm2k"
        assert job.env["WORK"] == "/w/toy_lstm2k"
        script = job.command[-1]
        if name.endswith("_prepare"):
            continue
        # the same job as the toy part's LSTM row but for the batch size (and the folder and the
        # toy part's legacy checkpoint selection by the criterion's loss)
        twin = toy[name[len("toy_lstm2k_"):]].command[-1]
        assert twin.replace("--max-tokens 1000", "--max-tokens 2000", 1).replace(
            "/w/toy/", "/w/toy_lstm2k/") == script
        trained = "_teacher" not in name and "--finetune-from-model" not in script
        assert ("MAX_UPDATE=2000 " in script) == trained


def test_every_archived_toy_lstm2k_record_is_of_a_job_the_part_defines_now():
    """The default rows' records, and those of the paper-form rows cut from the default (their
    archived runs stay available with --toy-lstm2k-methods)."""
    every = part_jobs(WORK, methods=[*toy_lstm2k.METHODS, "l2t_paper", "ala_paper"]).values()
    assert assert_archive_matches("toy_lstm2k", every) == 1 + 2 + 10 * 12  # prepare, 2 teachers, 12 rows


def test_l2t_init_deploys_the_l2t_teacher_untrained_with_l2ts_arguments():
    """The control differs from l2t in the teacher file alone: the l2t teacher job's file,
    rebuilt untrained by scripts/untrained_teacher.py before the student trains."""
    jobs = part_jobs("/w", seeds=(3,))
    control, taught = jobs["toy_lstm2k_lstm_l2t_init_seed3"], jobs["toy_lstm2k_lstm_l2t_seed3"]
    assert control.after == taught.after == ("toy_lstm2k_lstm_l2t_teacher",)
    trained = "/w/toy_lstm2k/checkpoints/lstm_l2t_teacher/teacher.pt"
    untrained = "/w/toy_lstm2k/checkpoints/lstm_l2t_init_seed3/teacher_untrained.pt"
    before, script = control.command[-1].split("MAX_UPDATE=", 1)
    assert f"scripts/untrained_teacher.py {trained} {untrained} --seed 1 && " in before
    assert ("MAX_UPDATE=" + script).replace(untrained, trained).replace("l2t_init", "l2t") \
        == taught.command[-1]
    # the teacher is trained once, for both rows (l2t_paper is cut from the default)
    assert [name for name in jobs if name.endswith("_teacher")] == ["toy_lstm2k_lstm_l2t_teacher"]


def test_the_l2t_row_is_compared_with_its_untrained_teacher(tmp_path):
    work = str(tmp_path)
    state = os.path.join(work, "state")
    scores = {"ce": [80.0, 82.0, 90.0], "l2t_init": [85.0, 88.0, 91.0], "l2t": [86.0, 88.5, 92.0]}
    for method, values in scores.items():
        for seed, value in enumerate(values, 1):
            name = f"toy_lstm2k_lstm_{method}_seed{seed}"
            write_record(state, JobRecord(name, 10.0, 0, summary={"score": value}))
    table = toy_lstm2k.PART.tables(["ce", "l2t_init", "l2t"], [1, 2, 3], work)[0]
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    names = [row.split("|")[1].strip() for row in rows[1:]]
    assert names[:3] == ["ce", "l2t_init", "l2t"]
    assert "vs l2t_init: Δ +0.83" in rows[3]  # (1 + 0.5 + 1) / 3


def test_toy_hard_lstm_is_toy_lstm2ks_student_on_the_hard_corpus_with_five_rows():
    """The same LSTM arguments and updates as toy_lstm2k, the hard corpus's data, the part's own
    folder, and only the five rows (one teacher: l2t's, shared with l2t_init)."""
    hard = part_jobs("/w", seeds=(1, 2), part=toy_hard_lstm.PART)
    toy = part_jobs("/w", seeds=(1, 2))
    rows = {name.rsplit("_seed", 1)[0][len("toy_hard_lstm_lstm_"):] for name in hard if "_seed" in name}
    assert rows == set(toy_hard_lstm.METHODS) == {"ce", "label_smoothing", "l2t_init", "l2t", "ala"}
    assert sorted(n for n in hard if n.endswith("_teacher")) == ["toy_hard_lstm_lstm_l2t_teacher"]
    assert "recipes/toy_hard/prepare.sh" in " ".join(hard["toy_hard_lstm_prepare"].command)
    for name, job in hard.items():
        assert study.part_of(name) == "toy_hard_lstm" and job.env["WORK"] == "/w/toy_hard_lstm"
        if name.endswith("_prepare"):
            continue
        twin = toy["toy_lstm2k_" + name[len("toy_hard_lstm_"):]].command[-1]
        assert twin.replace("/w/toy_lstm2k/", "/w/toy_hard_lstm/") == job.command[-1]


def test_toy_hard_lstm4k_is_toy_hard_lstm_with_4000_token_batches_all_archived():
    """Every job of toy_hard_lstm4k is toy_hard_lstm's with --max-tokens 4000 for the students'
    2000 (the teacher's own --max-tokens 1000 comes later in its command and wins in both), in its
    own folder; every job of its rows is archived, so a default study run restores the part."""
    big = part_jobs("/w", seeds=(1, 2), part=toy_hard_lstm4k.PART)
    small = part_jobs("/w", seeds=(1, 2), part=toy_hard_lstm.PART)
    assert toy_hard_lstm4k.METHODS == tuple(m for m in toy_hard_lstm.METHODS if m not in toy_hard_lstm4k.CUT)
    assert len(big) == len(small) - 2 * len(toy_hard_lstm4k.CUT)  # a cut row's job per seed
    for name, job in big.items():
        assert study.part_of(name) == "toy_hard_lstm4k" and job.env["WORK"] == "/w/toy_hard_lstm4k"
        twin = small["toy_hard_lstm_" + name[len("toy_hard_lstm4k_"):]].command[-1]
        expected = twin.replace("/w/toy_hard_lstm/", "/w/toy_hard_lstm4k/")
        if not name.endswith("_prepare"):
            assert "--max-tokens 2000" in expected and "--max-tokens 4000" not in expected
            expected = expected.replace("--max-tokens 2000", "--max-tokens 4000")
        assert expected == job.command[-1]
    assert "--max-tokens 1000" in big["toy_hard_lstm4k_lstm_l2t_teacher"].command[-1].split("--max-tokens 4000")[1]
    assert "toy_hard_lstm4k" not in study.IN_PROGRESS and "toy_hard_lstm4k" in study.PARTS
    # the archived runs are the part's jobs as it is defined now, every one of them (prepare,
    # teacher, 4 rows x 10 seeds), and the cut row's seed-1 run (label smoothing)
    every = part_jobs(WORK, part=toy_hard_lstm4k.PART, methods=toy_hard_lstm.METHODS).values()
    assert assert_archive_matches("toy_hard_lstm4k", every) == 1 + 1 + 4 * 10 + 1
    missing = [name for name in part_jobs(WORK, part=toy_hard_lstm4k.PART)
               if not os.path.exists(os.path.join(REPO, "results", "runs", name + ".json"))]
    assert not missing, f"not archived: {missing}"


def test_each_single_arch_part_has_its_own_checked_options(capsys):
    for argv, message in ((["--toy-hard-lstm-seeds", "1"], "--toy-hard-lstm-seeds 1: need >= 2"),
                          (["--toy-lstm2k-methods", "l2t", "ala"], "--toy-lstm2k-methods must include ce")):
        with pytest.raises(SystemExit):
            study.main(["--parts", "toy_lstm2k", "--work", "/nowhere", *argv])
        assert message in capsys.readouterr().err
