"""A small, resumable, dependency-aware parallel runner of command lines.

Each ``Job`` is one process (a training run, an evaluation, a shell pipeline). A job that
succeeded leaves ``<state_dir>/<name>.json`` with its wall time and command line, written
atomically after the process exits 0 and every declared output exists, so an interrupted study
re-runs only what is missing. A job whose command line (or environment) has changed since its
record was written -- a changed default -- is run again, after removing its ``clean`` paths (e.g.
a checkpoint folder that would otherwise be resumed), and so is everything that runs after it.
An interrupted job resumes its ``clean`` paths only if the same command started them.
Records written before commands were recorded have no command and are taken as they are. Two
cores: two single-threaded jobs at once use the machine better than one job with two threads
(small models do not scale across threads).

Across checkouts and sessions (a study part can take longer than one session, and work folders
do not survive): commands are recorded *portably*, with the ``roots`` (the work folder, the
repository, the virtual environment) written as placeholders, so a record made in ``/work/a``
matches the same job in ``/work/b``. A job with a ``summary`` (what the report reads of its
outputs: a few numbers) keeps it in its record, and ``archive`` (a folder in the repository) gets
a copy of every such record. A later run restores a job from the archive instead of running it
when the archived command matches, unless a job that has to run needs its outputs (a checkpoint
to fine-tune from): then it runs again.
"""

from __future__ import annotations

import fnmatch
import glob
import json
import os
import platform
import shutil
import subprocess
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Set, Tuple

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
            changed, and before a run that would find them left by another command (an
            interrupted job resumes only what the same command started: ``_start``).
        summary: called after the job succeeded; returns what the report reads of its outputs
            (JSON-able, small). Kept in the record, which makes the job archivable: the report
            of a restored job reads the summary, not the outputs.
    """

    name: str
    command: List[str]
    outputs: List[str] = field(default_factory=list)
    after: Tuple[str, ...] = ()
    env: Dict[str, str] = field(default_factory=dict)
    clean: List[str] = field(default_factory=list)
    summary: Optional[Callable[[], dict]] = None


@dataclass
class JobRecord:
    """What a finished job left: wall seconds, exit status (0 for success), the command line and
    extra environment it ran with (portable: ``roots`` as placeholders; None in records written
    before they were kept), the job's ``summary`` (None without one) and the CPU it ran on."""

    name: str
    seconds: float
    returncode: int
    command: Optional[List[str]] = None
    env: Optional[Dict[str, str]] = None
    summary: Optional[dict] = None
    cpu: Optional[str] = None

    def matches(self, job: Job, roots: Mapping[str, str] = None) -> bool:
        """Whether this record is of ``job`` as it is now, wherever each was made (``roots``:
        placeholder -> absolute path); legacy records without a command always match."""
        if self.command is None:
            return True
        return (portable(self.command, roots) == portable(job.command, roots)
                and portable_env(self.env or {}, roots) == portable_env(job.env, roots))

    def to_json(self) -> dict:
        return {"seconds": self.seconds, "returncode": self.returncode, "command": self.command,
                "env": self.env, "summary": self.summary, "cpu": self.cpu}


def portable(command: Sequence, roots: Mapping[str, str] = None) -> List[str]:
    """``command`` as strings with every root path replaced by its placeholder (the longest root
    first, so a work folder inside the repository keeps its own placeholder)."""
    pairs = sorted((roots or {}).items(), key=lambda item: -len(item[1]))
    out = []
    for part in command:
        part = str(part)
        for placeholder, path in pairs:
            part = part.replace(path, placeholder)
        out.append(part)
    return out


def portable_env(env: Mapping[str, str], roots: Mapping[str, str] = None) -> Dict[str, str]:
    return dict(zip(env, portable(env.values(), roots)))


@lru_cache(maxsize=1)
def cpu_name() -> str:
    """The CPU model (float kernels, and so the runs' last digits, differ between CPU types)."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


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
    return JobRecord(name, float(data["seconds"]), int(data["returncode"]), data.get("command"),
                     data.get("env"), data.get("summary"), data.get("cpu"))


def summary_of(state_dir: str, name: str) -> dict:
    """The summary of finished job ``name``; a clear error when it has none."""
    record = load_record(state_dir, name)
    if record is None or record.summary is None:
        what = "has not succeeded" if record is None else "has no summary"
        raise FileNotFoundError(f"job {name!r} {what} (state folder {state_dir})")
    return record.summary


def write_record(folder: str, record: JobRecord) -> None:
    """Write ``record`` atomically as ``<folder>/<name>.json``."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{record.name}.json")
    tmp = path + ".tmp"
    with open(tmp, "w") as handle:
        json.dump(record.to_json(), handle, indent=1)
        handle.write("\n")
    os.replace(tmp, path)


def forget_records(folders: Sequence[Optional[str]], patterns: Sequence[str]) -> List[str]:
    """Delete the records (``<name>.json``) whose job name matches a shell pattern of
    ``patterns`` in each of ``folders`` (None skipped), so those jobs run again: the way to
    redo runs after a code change that alters results without changing a command line.
    Returns the paths deleted."""
    gone = []
    for folder in filter(None, folders):
        for path in sorted(glob.glob(os.path.join(folder, "*.json"))):
            name = os.path.basename(path)[:-len(".json")]
            if any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns):
                os.remove(path)
                gone.append(path)
    return gone


def _keep(record: JobRecord, state_dir: str, archive: Optional[str]) -> None:
    write_record(state_dir, record)
    if archive and record.summary is not None:
        write_record(archive, record)


def _remove(paths: Sequence[str]) -> None:
    for path in paths:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        elif os.path.lexists(path):
            os.remove(path)


def _start(job: Job, state_dir: str, roots: Mapping[str, str]) -> str:
    """Mark ``job`` as started -- a record of its command in ``<state_dir>/started/`` -- and
    return the marker's path. What its ``clean`` paths hold is resumed only when the marker left
    by an interrupted run matches this job; otherwise (another command, or no marker: a folder
    of unknown origin) they are removed first, so that a checkpoint of another configuration is
    never resumed."""
    started = os.path.join(state_dir, "started")
    marker = load_record(started, job.name)
    if marker is None or not marker.matches(job, roots):
        _remove(job.clean)
        write_record(started, JobRecord(job.name, 0.0, -1, portable(job.command, roots),
                                        portable_env(job.env, roots)))
    return os.path.join(started, f"{job.name}.json")


def _run_one(job: Job, state_dir: str, roots: Mapping[str, str],
             archive: Optional[str]) -> JobRecord:
    log_path = os.path.join(state_dir, f"{job.name}.log")
    marker = _start(job, state_dir, roots)
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
    record = JobRecord(job.name, seconds, code, portable(job.command, roots),
                       portable_env(job.env, roots), cpu=cpu_name())
    if code == 0:
        try:
            record.summary = job.summary() if job.summary else None
        except Exception as error:  # noqa: BLE001 -- the job's outputs do not read; say so
            with open(log_path, "a") as log:
                log.write(f"\n[study] exit 0 but its summary failed: "
                          f"{type(error).__name__}: {error}\n")
            record.returncode = 1
            return record
        _keep(record, state_dir, archive)
        os.remove(marker)  # the record says what ran now
    return record


def _tail(path: str, lines: int = 15) -> str:
    try:
        with open(path, errors="replace") as handle:
            return "".join(handle.readlines()[-lines:])
    except OSError:
        return "(no log)"


def _done_records(jobs: Sequence[Job], state_dir: str, roots: Mapping[str, str],
                  archive: Optional[str]) -> Tuple[Dict[str, JobRecord], Set[str], List[Job]]:
    """Which jobs need not run: ({name: record}, names restored from the archive, jobs whose
    local record is stale; their record files are removed).

    A job is done when its record matches it and either its outputs exist or its record has a
    summary. Not done: a job whose record is stale (its command changed), everything after
    such a job, and a done job without its outputs that a job which runs needs them from."""
    records: Dict[str, JobRecord] = {}
    restored: Set[str] = set()
    stale_local: List[Job] = []
    changed: Set[str] = set()
    for job in jobs:
        record = load_record(state_dir, job.name)
        if record is not None and not record.matches(job, roots):
            stale_local.append(job)
            changed.add(job.name)
            os.remove(os.path.join(state_dir, f"{job.name}.json"))
            record = None
        if record is None and archive:
            archived = load_record(archive, job.name)
            if archived is not None and archived.summary is not None:
                if archived.matches(job, roots):
                    record = archived
                    restored.add(job.name)
                else:
                    changed.add(job.name)
        if record is not None and (record.summary is not None
                                   or all(os.path.exists(p) for p in job.outputs)):
            records[job.name] = record
    named = {job.name: job for job in jobs}
    has_outputs = lambda name: all(os.path.exists(p) for p in named[name].outputs)
    moved = True
    while moved:
        moved = False
        for job in jobs:
            if any(dep in changed for dep in job.after) and job.name not in changed:
                changed.add(job.name)  # after a changed job: its inputs changed
                records.pop(job.name, None)
                moved = True
            if job.name not in records:  # it runs: what it runs after must leave its outputs
                for dep in job.after:
                    if dep in records and not has_outputs(dep):
                        del records[dep]
                        moved = True
    return records, restored, stale_local


def run_jobs(jobs: Sequence[Job], state_dir: str, workers: int = 2, progress: bool = True,
             roots: Mapping[str, str] = None, archive: str = None) -> Dict[str, JobRecord]:
    """Run ``jobs`` (``workers`` at a time, dependencies first); skip those already done.

    Args:
        roots: placeholder -> absolute path (e.g. ``{"<work>": work}``): records are compared
            and written with these paths as placeholders (module docstring).
        archive: a folder of records with summaries, kept across checkouts: a job whose
            archived record matches is restored instead of run (unless a job that runs needs
            its outputs), and every job with a summary that succeeds is archived.

    Returns the record of every job. A failed job's dependants are not run; after everything
    runnable has ended, ``JobFailed`` lists the failures with the tail of their logs.
    """
    if workers < 1:
        raise ValueError(f"workers={workers}; expected >= 1")
    _check_names(jobs)
    os.makedirs(state_dir, exist_ok=True)
    records, restored, stale = _done_records(jobs, state_dir, roots, archive)
    for job in jobs:  # records made before summaries (or without the archive): keep them now
        record = records.get(job.name)
        if record is None or job.name in restored or job.summary is None:
            continue
        if record.summary is None and all(os.path.exists(p) for p in job.outputs):
            record.summary = job.summary()
            if record.command is not None:  # older records hold absolute paths
                record.command = portable(record.command, roots)
                record.env = portable_env(record.env or {}, roots)
            _keep(record, state_dir, archive)
        elif archive and record.summary is not None and load_record(archive, job.name) != record:
            write_record(archive, record)
    for name in restored:
        if name in records:
            write_record(state_dir, records[name])
    for job in stale:
        _remove(job.clean)
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
                    running[pool.submit(_run_one, job, state_dir, roots, archive)] = job
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
