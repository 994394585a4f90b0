"""A small, resumable, dependency-aware parallel runner of command lines.

Each ``Job`` is one process (a training run, an evaluation, a shell pipeline). A job that
succeeded leaves ``<state_dir>/<name>.json`` with its wall time and command line, written
atomically after the process exits 0 and every declared output exists, so an interrupted study
re-runs only what is missing. A job whose command line (or environment) has changed since its
record was written -- a changed default -- is run again, after removing its ``clean`` paths (e.g.
a checkpoint folder that would otherwise be resumed), and so is everything that runs after it.
Records written before commands were recorded have no command and are taken as they are. Two cores: two single-threaded jobs at once use the machine better than one job with two
threads (small models do not scale across threads).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from tqdm import tqdm


@dataclass
class Job:
    """One command line.

    Attributes:
        name: unique id; also the log and state file names (``[A-Za-z0-9_.-]``).
        command: argv list.
        outputs: files the command must create (checked after it exits 0).
        after: names of jobs that must have succeeded first.
        env: extra environment variables.
        clean: files or folders to delete before the job is run again because its command
            changed (not before a first run, so that an interrupted job can resume).
    """

    name: str
    command: List[str]
    outputs: List[str] = field(default_factory=list)
    after: Tuple[str, ...] = ()
    env: Dict[str, str] = field(default_factory=dict)
    clean: List[str] = field(default_factory=list)


@dataclass
class JobRecord:
    """What a finished job left: wall seconds, exit status (0 for success) and the command line
    and extra environment it ran with (None in records written before they were kept)."""

    name: str
    seconds: float
    returncode: int
    command: Optional[List[str]] = None
    env: Optional[Dict[str, str]] = None

    def matches(self, job: Job) -> bool:
        """Whether this record is of ``job`` as it is now (legacy records always match)."""
        if self.command is None:
            return True
        return self.command == [str(c) for c in job.command] and (self.env or {}) == job.env


class JobFailed(RuntimeError):
    """Raised by ``run_jobs`` after all runnable jobs ended, naming the failed ones."""


def _check_names(jobs: Sequence[Job]) -> Dict[str, Job]:
    by_name: Dict[str, Job] = {}
    for job in jobs:
        if not job.name or not all(c.isalnum() or c in "_.-" for c in job.name):
            raise ValueError(f"job name {job.name!r}; expected letters, digits, '_', '.', '-'")
        if job.name in by_name:
            raise ValueError(f"two jobs are named {job.name!r}; names must be unique")
        by_name[job.name] = job
    for job in jobs:
        for dep in job.after:
            if dep not in by_name:
                raise ValueError(f"job {job.name!r} runs after {dep!r}, which is not a job")
    return by_name


def load_record(state_dir: str, name: str) -> Optional[JobRecord]:
    """The success record of job ``name``, or None if it has not succeeded."""
    path = os.path.join(state_dir, f"{name}.json")
    if not os.path.exists(path):
        return None
    with open(path) as handle:
        data = json.load(handle)
    return JobRecord(name, float(data["seconds"]), int(data["returncode"]),
                     data.get("command"), data.get("env"))


def _write_record(state_dir: str, record: JobRecord) -> None:
    path = os.path.join(state_dir, f"{record.name}.json")
    tmp = path + ".tmp"
    with open(tmp, "w") as handle:
        json.dump({"seconds": record.seconds, "returncode": record.returncode,
                   "command": record.command, "env": record.env}, handle)
    os.replace(tmp, path)


def _run_one(job: Job, state_dir: str) -> JobRecord:
    log_path = os.path.join(state_dir, f"{job.name}.log")
    env = dict(os.environ, **job.env)
    started = time.perf_counter()
    with open(log_path, "w") as log:
        code = subprocess.run(job.command, stdout=log, stderr=subprocess.STDOUT, env=env).returncode
    seconds = time.perf_counter() - started
    missing = [path for path in job.outputs if not os.path.exists(path)]
    if code == 0 and missing:
        with open(log_path, "a") as log:
            log.write(f"\n[study] exit 0 but outputs missing: {missing}\n")
        code = 1
    record = JobRecord(job.name, seconds, code, [str(c) for c in job.command], dict(job.env))
    if code == 0:
        _write_record(state_dir, record)
    return record


def _tail(path: str, lines: int = 15) -> str:
    try:
        with open(path, errors="replace") as handle:
            return "".join(handle.readlines()[-lines:])
    except OSError:
        return "(no log)"


def run_jobs(jobs: Sequence[Job], state_dir: str, workers: int = 2,
             progress: bool = True) -> Dict[str, JobRecord]:
    """Run ``jobs`` (``workers`` at a time, dependencies first); skip those already done.

    Returns the record of every job. A failed job's dependants are not run; after everything
    runnable has ended, ``JobFailed`` lists the failures with the tail of their logs.
    """
    if workers < 1:
        raise ValueError(f"workers={workers}; expected >= 1")
    by_name = _check_names(jobs)
    os.makedirs(state_dir, exist_ok=True)
    records: Dict[str, JobRecord] = {}
    stale: List[Job] = []
    for job in jobs:
        record = load_record(state_dir, job.name)
        if record is not None and all(os.path.exists(p) for p in job.outputs):
            if record.matches(job):
                records[job.name] = record
            else:
                stale.append(job)
    changed = True  # a job after one whose command changed runs again too
    while changed:
        changed = False
        stale_names = {job.name for job in stale}
        for job in jobs:
            if job.name in records and any(dep in stale_names for dep in job.after):
                del records[job.name]
                stale.append(job)
                changed = True
    for job in stale:
        os.remove(os.path.join(state_dir, f"{job.name}.json"))
        for path in job.clean:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            elif os.path.lexists(path):
                os.remove(path)
    pending = [job for job in jobs if job.name not in records]
    failed: List[str] = []
    blocked: List[str] = []
    running: Dict[Future, Job] = {}
    bar = tqdm(total=len(pending), desc="study jobs", disable=not progress, unit="job")
    with ThreadPoolExecutor(max_workers=workers) as pool:
        while pending or running:
            for job in list(pending):
                if any(dep in failed or dep in blocked for dep in job.after):
                    pending.remove(job)
                    blocked.append(job.name)
                    bar.update()
                elif all(dep in records for dep in job.after) and len(running) < workers:
                    pending.remove(job)
                    running[pool.submit(_run_one, job, state_dir)] = job
            if not running:
                if pending:  # only possible with a dependency cycle
                    raise ValueError(f"jobs {[j.name for j in pending]} wait on each other")
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                job = running.pop(future)
                record = future.result()
                bar.update()
                if record.returncode == 0:
                    records[job.name] = record
                    bar.write(f"[study] {job.name}: done in {record.seconds:.0f}s")
                else:
                    failed.append(job.name)
                    bar.write(f"[study] {job.name}: FAILED (exit {record.returncode}); log "
                              f"{os.path.join(state_dir, job.name + '.log')}")
    bar.close()
    if failed:
        details = "\n".join(f"--- {name} ---\n{_tail(os.path.join(state_dir, name + '.log'))}"
                            for name in failed)
        raise JobFailed(f"{len(failed)} job(s) failed: {failed}; not run because of them: "
                        f"{blocked}\n{details}")
    return records
