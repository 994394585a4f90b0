"""The study's toy_lstm2k part: the toy part's jobs for the LSTM with the recipe's 2000-token
batches (the one argument that differs), every row but dynamic_fixed, and archived records that
match the jobs the part defines now."""

import os
import sys
from types import SimpleNamespace

from fairseq_dynloss.study import toy_lstm2k, translation
from fairseq_dynloss.study.jobs import load_record

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "scripts"))
import study  # noqa: E402


def part_jobs(work, seeds=range(1, 11)):
    args = SimpleNamespace(toy_lstm2k_methods=toy_lstm2k.METHODS, toy_lstm2k_seed_list=list(seeds))
    env = dict(study.ONE_THREAD, VENV_BIN=os.path.dirname(study.PYTHON))
    return {job.name: job for job in toy_lstm2k.jobs(args, work, REPO, env)}


def test_the_toy_parts_lstm_rows_with_2000_token_batches():
    jobs = part_jobs("/w", seeds=(1, 2))
    assert "dynamic_fixed" not in toy_lstm2k.METHODS and "ce" in toy_lstm2k.METHODS
    assert not any("dynamic_fixed" in name for name in jobs)
    toy = study.toy_jobs(SimpleNamespace(
        toy_archs=["lstm"], toy_methods=translation.METHODS, seed_list=[1, 2],
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
    work = "/nowhere/work"
    jobs = part_jobs(work)
    roots = {"<work>": work, "<repo>": study.REPO, "<python>": study.PYTHON,
             "<venv-bin>": os.path.dirname(study.PYTHON)}
    archive = os.path.join(REPO, "results", "runs")
    for name in (f[:-len(".json")] for f in os.listdir(archive)):
        if study.part_of(name) == "toy_lstm2k":
            assert name in jobs, f"{name}: archived, but no toy_lstm2k job has that name"
            assert load_record(archive, name).matches(jobs[name], roots), name
