"""``--clock cpu`` for the benchmarks: time with this thread's CPU clock instead of the wall clock.

On a shared machine the wall clock also counts the time a process waits for a core, so a ratio
of two wall times moves with the load; the thread's CPU time is what a quiet machine's wall clock
would read for single-threaded work (``OMP_NUM_THREADS=1``). ``clock("cpu")`` makes the
trainer's epoch timer (``trainer/loop.py``) and the ALA controller's phase timers
(``trainer/ala.py``) read ``time.thread_time``; ``now(kind)`` is the matching clock for a
benchmark's own timed loop.
"""

from __future__ import annotations

import contextlib
import time

CLOCKS = ("wall", "cpu")


class _CpuClock:
    """``time`` with ``perf_counter`` reading this thread's CPU time."""

    def __getattr__(self, name):
        return time.thread_time if name == "perf_counter" else getattr(time, name)


def now(kind: str):
    """The clock function of ``kind``: ``time.perf_counter`` (wall) or ``time.thread_time`` (cpu)."""
    if kind not in CLOCKS:
        raise ValueError(f"clock {kind!r}: expected one of {CLOCKS}")
    return time.perf_counter if kind == "wall" else time.thread_time


@contextlib.contextmanager
def clock(kind: str):
    """Times inside the trainer's loop and the ALA controller come from ``kind`` (wall | cpu)."""
    now(kind)  # validates
    if kind == "wall":
        yield
        return
    from fairseq_dynloss.trainer import ala, loop

    saved = loop.time, ala.time
    loop.time = ala.time = _CpuClock()
    try:
        yield
    finally:
        loop.time, ala.time = saved
