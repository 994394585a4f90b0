"""The study's toy part: every scored job is archivable (it summarises its sacrebleu result) and
the table is built from those summaries alone, so archived runs report without their folders."""

import json
import os
import sys
from types import SimpleNamespace

from fairseq_dynloss.study.jobs import JobRecord, load_record, write_record
from fairseq_dynloss.study.stats import summarize

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "scripts"))
import study  # noqa: E402
from archive_check import WORK, assert_archive_matches  # noqa: E402


def test_toy_table_reads_the_archived_summaries_not_the_run_folders(tmp_path):
    args = SimpleNamespace(toy_archs=["transformer"], toy_methods=["ce", "ala"], seed_list=[1, 2],
                           toy_updates={"transformer": 600}, teacher_steps=5, seq_updates=50)
    work = str(tmp_path / "work")
    jobs = study.toy_jobs(args, work)
    assert all(job.summary is not None for job in jobs)  # every job can be archived
    scores = {"transformer_ce_seed1": 80.0, "transformer_ce_seed2": 84.0,
              "transformer_ala_seed1": 81.5, "transformer_ala_seed2": 86.5}
    for job in jobs:  # what the runs wrote, summarised and recorded as run_jobs does
        name = job.name[len("toy_"):]
        if name in scores:
            path = os.path.join(work, "toy", "results", f"{name}.bleu.json")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as handle:
                json.dump({"score": scores[name]}, handle)
        write_record(os.path.join(work, "state"), JobRecord(job.name, 10.0, 0, summary=job.summary()))
    for name in scores:  # the run folders are gone (another checkout): the records suffice
        os.remove(os.path.join(work, "toy", "results", f"{name}.bleu.json"))
    table = study.toy_tables(args, work)[0]
    line = next(l for l in table.splitlines() if l.startswith("| ala |"))
    s = summarize([81.5, 86.5])
    assert f"{s.mean:.2f} ± {s.std:.2f}" in line and "| +2.00 ± 0.71 |" in line


def test_every_archived_toy_record_is_of_a_job_the_part_defines_now():
    """results/runs/ is what the toy tables are built from: a record whose command no longer
    matches its job (a renamed row, a changed argument) would be silently re-run, and a record of
    no job at all would be an orphan. Guards refactors of study/translation.py."""
    args = SimpleNamespace(toy_archs=list(study.TOY_UPDATES), toy_methods=study.translation.METHODS,
                           seed_list=list(range(1, 11)), toy_updates=study.TOY_UPDATES,
                           teacher_steps=60, seq_updates=50)
    assert_archive_matches("toy", study.toy_jobs(args, WORK))

def test_every_archived_job_belongs_to_one_part_by_its_longest_prefix():
    # "toy_" is a prefix of toy_hard's jobs and "mnist1d_" of the reference part's: each
    # section's header counts its own part's jobs only.
    assert study.part_of("toy_hard_transformer_ce_seed1") == "toy_hard"
    assert study.part_of("toy_lstm_ce_seed1") == "toy"
    assert study.part_of("toy_lstm2k_lstm_ce_seed1") == "toy_lstm2k"
    assert study.part_of("mnist1d_reference_mnist1d_mlp_seed1") == "mnist1d_reference"
    assert study.part_of("mnist1d_clean_mnist1d_mlp_ce_seed1") == "mnist1d"
    assert study.part_of("digits_mlp_ce_seed1") == "digits"
    assert study.part_of("unrelated") == ""
    archived = [name[:-5] for name in os.listdir(os.path.join(REPO, "results", "runs"))]
    assert all(study.part_of(name) for name in archived)


def test_every_archived_digits_record_is_of_a_job_the_part_defines_now():
    """As for the toy part: a renamed digits row leaves no orphan record, and no record's
    command differs from its job's (it would be silently re-run)."""
    args = SimpleNamespace(digits_models=["mlp", "lenet"], digits_methods=list(study.DIGITS_METHODS),
                           aucpr=True, seed_list=list(range(1, 11)), digits_epochs=30,
                           digits_teacher=[100, 50])
    jobs = study.digits_jobs(args, WORK)
    assert assert_archive_matches("digits", jobs) == len(jobs) == 240
