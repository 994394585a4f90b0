"""kill -9 while dynloss-train writes checkpoint_last.pt (issue 17, item 8): the previous
checkpoint stays whole, the temporary file the kill left is removed by the resumed run, and the
resumed run equals the uninterrupted one."""

import csv
import os
import signal
import subprocess
import sys

import pytest
import torch
from trainer_helpers import REPO, compose_config

from fairseq_dynloss.trainer import train

QUICK = ["task.epochs=3", "model.hidden=[32]", "checkpoint_interval_s=0", "progress=false",
         "tensorboard=false", "plot_every=1000"]

# dynloss-train whose 2nd write of checkpoint_last.pt (after epoch 2) writes a few bytes of the
# temporary file and then SIGKILLs the process: kill -9 at that moment, reproducibly.
KILL_DURING_SAVE = """
import os, signal, sys, torch
calls, real = [0], torch.save
def save_then_die(obj, f, *args, **kwargs):
    if isinstance(f, str) and os.path.basename(f).startswith(".checkpoint_last.pt"):
        calls[0] += 1
        if calls[0] == 2:
            open(f, "wb").write(b"PK\\x03\\x04 half")
            os.kill(os.getpid(), signal.SIGKILL)
    return real(obj, f, *args, **kwargs)
torch.save = save_then_die
sys.argv = ["dynloss-train", *sys.argv[1:]]
from fairseq_dynloss.trainer.cli import main
main()
"""


@pytest.mark.slow
def test_kill_during_the_checkpoint_write_then_resume(tmp_path):
    straight = train(compose_config(*QUICK), str(tmp_path / "straight"))
    run = tmp_path / "killed"
    killed = subprocess.run([sys.executable, "-c", KILL_DURING_SAVE, *QUICK, f"hydra.run.dir={run}"],
                            cwd=REPO, capture_output=True, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert torch.load(run / "checkpoint_last.pt", weights_only=True)["epoch"] == 1  # whole
    assert len(list(run.glob(".checkpoint_last.pt*.tmp"))) == 1  # what the kill left
    with open(run / "metrics.csv") as handle:
        assert len(list(csv.DictReader(handle))) == 1  # metrics.csv follows the checkpoint
    resumed = train(compose_config(*QUICK, "resume=true"), str(run))
    assert not list(run.glob(".*.tmp"))
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("time", "cpu_time")} for r in rows]
    assert strip(resumed) == strip(straight)
