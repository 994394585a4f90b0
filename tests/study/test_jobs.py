import os
import sys

import pytest

from fairseq_dynloss.study.jobs import Job, JobFailed, forget_records, load_record, run_jobs


def python_job(name, code, outputs=(), after=()):
    return Job(name, [sys.executable, "-c", code], list(outputs), tuple(after))


def test_dependencies_run_first_and_records_skip_reruns(tmp_path):
    trace = tmp_path / "trace.txt"
    append = lambda tag: f"open({str(trace)!r}, 'a').write({tag!r} + '\\n')"
    out = tmp_path / "b.out"
    jobs = [
        python_job("b", append("b") + f"; open({str(out)!r}, 'w').write('x')", [out], ["a"]),
        python_job("a", append("a")),
        python_job("c", append("c"), after=["b"]),
    ]
    records = run_jobs(jobs, str(tmp_path / "state"), workers=2, progress=False)
    assert set(records) == {"a", "b", "c"}
    assert trace.read_text().split() == ["a", "b", "c"]
    assert load_record(str(tmp_path / "state"), "b").returncode == 0
    # A second run finds every record and runs nothing.
    run_jobs(jobs, str(tmp_path / "state"), workers=2, progress=False)
    assert trace.read_text().split() == ["a", "b", "c"]
    # A record whose output has disappeared is re-run.
    os.remove(out)
    run_jobs(jobs, str(tmp_path / "state"), workers=1, progress=False)
    assert trace.read_text().split() == ["a", "b", "c", "b"]


def test_failure_blocks_dependants_and_reports_log(tmp_path):
    jobs = [
        python_job("bad", "import sys; print('boom here'); sys.exit(3)"),
        python_job("child", "pass", after=["bad"]),
        python_job("independent", "pass"),
    ]
    with pytest.raises(JobFailed, match="boom here") as info:
        run_jobs(jobs, str(tmp_path), workers=2, progress=False)
    assert "['bad']" in str(info.value) and "child" in str(info.value)
    assert load_record(str(tmp_path), "independent") is not None
    assert load_record(str(tmp_path), "bad") is None and load_record(str(tmp_path), "child") is None


def test_missing_declared_output_is_a_failure(tmp_path):
    with pytest.raises(JobFailed, match="outputs missing"):
        run_jobs([python_job("j", "pass", [tmp_path / "never"])], str(tmp_path), progress=False)
    assert load_record(str(tmp_path), "j") is None


@pytest.mark.parametrize("jobs,message", [
    ([Job("a b", ["true"])], "expected letters"),
    ([Job("a", ["true"]), Job("a", ["true"])], "unique"),
    ([Job("a", ["true"], after=("zzz",))], "not a job"),
    ([Job("a", ["true"], after=("b",)), Job("b", ["true"], after=("a",))], "wait on each other"),
])
def test_bad_job_lists(tmp_path, jobs, message):
    with pytest.raises(ValueError, match=message):
        run_jobs(jobs, str(tmp_path), progress=False)


def test_workers_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="workers=0"):
        run_jobs([], str(tmp_path), workers=0)


def test_changed_command_reruns_job_and_dependants_after_cleaning(tmp_path):
    trace = tmp_path / "trace.txt"
    append = lambda tag: f"open({str(trace)!r}, 'a').write({tag!r} + '\\n')"
    leftover = tmp_path / "ckpt"
    leftover.mkdir()
    (leftover / "old.pt").write_text("x")

    def jobs(version):
        first = python_job("a", append("a" + version))
        first.clean = [str(leftover)]
        return [first, python_job("b", append("b"), after=["a"]), python_job("c", append("c"))]

    state = str(tmp_path / "state")
    run_jobs(jobs("1"), state, workers=1, progress=False)
    assert not leftover.exists()  # of unknown origin (no run of this command started it)
    assert load_record(state, "a").command[-1] == append("a1")
    run_jobs(jobs("1"), state, workers=1, progress=False)
    assert sorted(trace.read_text().split()) == ["a1", "b", "c"]
    # a's command changed: a runs again (its clean paths removed first), and b after it; c not.
    leftover.mkdir()
    run_jobs(jobs("2"), state, workers=1, progress=False)
    assert not leftover.exists()
    assert sorted(trace.read_text().split()) == ["a1", "a2", "b", "b", "c"]


def test_interrupted_job_resumes_only_what_its_own_command_started(tmp_path):
    """A job that fails half-way leaves a checkpoint folder: the same command resumes it; another
    command (a changed row, a changed default) must not, so it is removed before that run."""
    ckpt = tmp_path / "ckpt"
    seen = tmp_path / "seen.txt"

    def job(version, fail):  # reports whether it found a checkpoint, then writes its own
        code = (f"import os; open({str(seen)!r}, 'a').write(str(os.path.exists({str(ckpt / 'part.pt')!r})) + ' ');"
                f"os.makedirs({str(ckpt)!r}, exist_ok=True); open({str(ckpt / 'part.pt')!r}, 'w').write({version!r});"
                f"raise SystemExit({int(fail)})")
        made = python_job("a", code)
        made.clean = [str(ckpt)]
        return made

    state = str(tmp_path / "state")
    with pytest.raises(JobFailed):  # interrupted: no record, its checkpoint stays
        run_jobs([job("1", fail=True)], state, workers=1, progress=False)
    with pytest.raises(JobFailed):  # the same command resumes it
        run_jobs([job("1", fail=True)], state, workers=1, progress=False)
    assert seen.read_text().split() == ["False", "True"]
    run_jobs([job("2", fail=False)], state, workers=1, progress=False)  # another command
    assert seen.read_text().split() == ["False", "True", "False"]
    assert (ckpt / "part.pt").read_text() == "2"
    assert not os.path.exists(os.path.join(state, "started", "a.json"))  # the record replaced it


def test_legacy_record_without_command_is_reused(tmp_path):
    (tmp_path / "a.json").write_text('{"seconds": 1.5, "returncode": 0}')
    records = run_jobs([python_job("a", "raise SystemExit(1)")], str(tmp_path), progress=False)
    assert records["a"].seconds == 1.5 and records["a"].command is None


def archived_pair(work, trace, version="1"):
    """Job a writes <work>/a.out and summarises it; job b reads it (a fine-tune of a's model)."""
    append = lambda tag: f"open({str(trace)!r}, 'a').write({tag!r} + '\\n')"
    a_out, b_out = work / "a.out", work / "b.out"
    a = python_job("a", append("a" + version) + f"; open({str(a_out)!r}, 'w').write('{version}')",
                   [a_out])
    a.summary = lambda: {"value": float(a_out.read_text())}
    b = python_job("b", append("b") + f"; open({str(b_out)!r}, 'w').write(open({str(a_out)!r}).read())",
                   [b_out], ["a"])
    b.summary = lambda: {"value": float(b_out.read_text()) + 10}
    return [a, b]


def two_checkouts(tmp_path):
    """(trace file, archive folder, run(folder, version)): the pair run in a work folder of its
    own, one per checkout, all sharing one archive; the first checkout has already run it."""
    trace, archive = tmp_path / "trace.txt", str(tmp_path / "archive")

    def run(name, version="1"):
        work = tmp_path / name
        work.mkdir(exist_ok=True)
        return run_jobs(archived_pair(work, trace, version), str(work / "state"), progress=False,
                        roots={"<work>": str(work)}, archive=archive)

    run("first")
    return trace, archive, run


def test_archived_jobs_are_restored_in_another_work_folder(tmp_path):
    trace, archive, run = two_checkouts(tmp_path)
    assert trace.read_text().split() == ["a1", "b"]
    saved = load_record(archive, "b")
    assert saved.summary == {"value": 11.0} and saved.cpu
    assert all(str(tmp_path / "first") not in part for part in saved.command)  # <work> instead
    # Another checkout, nothing in its work folder: both restored from the archive, none run.
    records = run("second")
    assert trace.read_text().split() == ["a1", "b"]
    assert records["b"].summary == {"value": 11.0} and not (tmp_path / "second" / "b.out").exists()
    assert load_record(str(tmp_path / "second" / "state"), "a").summary == {"value": 1.0}


def test_a_restored_job_runs_again_when_a_job_that_runs_needs_its_outputs(tmp_path):
    trace, archive, run = two_checkouts(tmp_path)
    os.remove(os.path.join(archive, "b.json"))  # b was never archived: it must run
    run("second")
    assert trace.read_text().split() == ["a1", "b", "a1", "b"]  # a again: b reads a.out


def test_a_changed_archived_command_runs_again_with_everything_after_it(tmp_path):
    trace, archive, run = two_checkouts(tmp_path)
    records = run("second", version="2")
    assert trace.read_text().split() == ["a1", "b", "a2", "b"]
    assert records["b"].summary == {"value": 12.0} and load_record(archive, "b").summary == {"value": 12.0}


def test_a_record_made_before_summaries_is_summarised_and_archived(tmp_path):
    trace, archive = tmp_path / "trace.txt", str(tmp_path / "archive")
    jobs = archived_pair(tmp_path, trace)
    summaries = [job.summary for job in jobs]
    for job in jobs:
        job.summary = None
    run_jobs(jobs, str(tmp_path / "state"), progress=False)  # no summaries, no archive
    assert load_record(str(tmp_path / "state"), "b").summary is None
    for job, summary in zip(jobs, summaries):
        job.summary = summary
    assert not os.path.exists(archive)
    run_jobs(jobs, str(tmp_path / "state"), progress=False, archive=archive,
             roots={"<work>": str(tmp_path)})
    assert trace.read_text().split() == ["a1", "b"]  # nothing ran again
    archived = load_record(archive, "b")
    assert archived.summary == {"value": 11.0}
    assert "<work>" in archived.command[-1] and str(tmp_path) not in archived.command[-1]


def test_a_summary_that_fails_fails_the_job(tmp_path):
    job = python_job("j", "pass")
    job.summary = lambda: {"value": float(open(tmp_path / "missing.txt").read())}
    with pytest.raises(JobFailed, match="summary failed.*missing.txt"):
        run_jobs([job], str(tmp_path / "state"), progress=False, archive=str(tmp_path / "archive"))
    assert load_record(str(tmp_path / "state"), "j") is None
    assert not os.path.exists(tmp_path / "archive" / "j.json")


def test_forgotten_records_run_again_everywhere(tmp_path):
    trace, archive, run = two_checkouts(tmp_path)
    gone = forget_records([str(tmp_path / "first" / "state"), archive, None], ["b*"])
    assert sorted(os.path.basename(p) for p in gone) == ["b.json", "b.json"]
    run("first")
    assert trace.read_text().split() == ["a1", "b", "b"]  # b only: a's record is kept
