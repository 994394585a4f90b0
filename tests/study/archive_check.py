"""A check shared by the parts' tests: the archived job records (results/runs/) of a part are
the jobs the part defines now, command for command, so a regeneration restores them rather than
re-running them (or, worse, reporting records of jobs that no longer exist)."""

import os
import sys

from fairseq_dynloss.study.jobs import load_record

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "scripts"))
import study  # noqa: E402

WORK = "/nowhere/work"  # the work folder to build the jobs with


def assert_archive_matches(part, part_jobs):
    """Every record of ``part`` in results/runs/ is a job of ``part_jobs`` (built with work
    folder WORK) with the same command. Returns how many records there are (at least one)."""
    jobs = {job.name: job for job in part_jobs}
    roots = {"<work>": WORK, "<repo>": study.REPO, "<python>": study.PYTHON,
             "<venv-bin>": os.path.dirname(study.PYTHON)}
    archive = os.path.join(REPO, "results", "runs")
    names = [f[:-len(".json")] for f in os.listdir(archive)
             if study.part_of(f[:-len(".json")]) == part]
    assert names, f"no archived {part} records"
    for name in names:
        assert name in jobs, f"{name}: archived, but no {part} job has that name"
        record = load_record(archive, name)
        assert record.matches(jobs[name], roots), f"{name}: archived command differs from the job's"
    return len(names)
