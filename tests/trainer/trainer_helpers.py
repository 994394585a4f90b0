"""Shared helpers of the trainer tests: compose the Hydra config in-process, run the CLI."""

import os
import subprocess
import sys
from pathlib import Path

from hydra import compose, initialize_config_module

REPO = Path(__file__).resolve().parents[2]


def compose_config(*overrides):
    """The resolved trainer config for ``overrides`` (as on the command line)."""
    with initialize_config_module("fairseq_dynloss.trainer.conf", version_base="1.3"):
        return compose("dynloss_train", overrides=["progress=false", "plot_every=1000", *overrides])


def run_cli(*args, module="fairseq_dynloss.trainer", launcher=None, timeout=240):
    """Run ``python -m fairseq_dynloss.trainer`` (or ``launcher`` + module) in a subprocess."""
    env = dict(os.environ, OMP_NUM_THREADS="1", HYDRA_FULL_ERROR="0")
    command = (launcher or [sys.executable, "-m"]) + [module, "progress=false", *args]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def is_clock(key):
    """Whether a metrics/log column is a clock reading (``time``, ``cpu_time``, ``*_time*``,
    ``time_*``): the one thing a resumed or repeated run may not reproduce."""
    return key == "time" or "_time" in key or key.startswith("time_")


def without_clocks(rows):
    """``rows`` (dicts, e.g. from csv.DictReader) without their clock columns (``is_clock``)."""
    return [{k: v for k, v in row.items() if not is_clock(k)} for row in rows]
