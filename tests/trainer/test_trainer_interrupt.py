"""Ctrl-C / SIGTERM: dynloss-train writes checkpoint_last.pt at the next update boundary (even
before its first timed checkpoint), says how to resume, and resume=true then equals an
uninterrupted run exactly."""

import csv
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from trainer_helpers import REPO, compose_config, without_clocks

import fairseq_dynloss.trainer.loop as loop
from fairseq_dynloss.trainer import train
from fairseq_dynloss.trainer.interrupt import StopRequest, TrainingInterrupted



def read_rows(folder):
    with open(folder / "metrics.csv") as handle:
        return list(csv.DictReader(handle))


def assert_same_weights(a_path, b_path):
    a = torch.load(a_path, weights_only=True)
    b = torch.load(b_path, weights_only=True)
    assert a["epoch"] == b["epoch"]
    for key in a["student"]:
        assert torch.equal(a["student"][key], b["student"][key]), key


def signal_after_updates(monkeypatch, updates, signum=signal.SIGINT):
    """Make the progress bar send ``signum`` to this process after ``updates`` updates (the bar
    is updated once per update, after the optimiser step)."""
    real = loop.tqdm

    class Bar(real):
        count = 0

        def update(self, n=1):
            Bar.count += n
            if Bar.count == updates:
                os.kill(os.getpid(), signum)
            return super().update(n)

    monkeypatch.setattr(loop, "tqdm", Bar)


@pytest.mark.parametrize("signum,updates", [(signal.SIGINT, 23), (signal.SIGTERM, 5)])
def test_a_signal_inside_an_epoch_checkpoints_there_and_resume_is_exact(tmp_path, monkeypatch, signum, updates):
    # Digits: 17 updates per epoch at batch 64; update 23 is inside epoch 2, 5 inside epoch 1
    # (before any checkpoint: checkpoint_interval_s defers them all to the end of the job).
    common = ["model=lenet", "loss=dynamic", "loss.form=paper", "task.epochs=3", "optim.milestones=[0.5]",
              "checkpoint_interval_s=1e9"]
    full = train(compose_config(*common), str(tmp_path / "full"))
    before = signal.getsignal(signal.SIGINT)  # default_int_handler, or SIG_IGN in a background job
    signal_after_updates(monkeypatch, updates, signum)
    with pytest.raises(TrainingInterrupted, match="resume with resume=true") as stop:
        train(compose_config(*common), str(tmp_path / "split"))
    assert stop.value.signum == signum
    state = torch.load(tmp_path / "split/checkpoint_last.pt", weights_only=True)
    assert state["epoch"] == updates // 17 and state["position"]["batches"] == updates % 17
    assert signal.getsignal(signal.SIGINT) is before  # handlers restored
    monkeypatch.undo()  # the real progress bar again
    resumed = train(compose_config(*common, "resume=true"), str(tmp_path / "split"))
    assert without_clocks(resumed) == without_clocks(full)
    assert without_clocks(read_rows(tmp_path / "split")) == without_clocks(read_rows(tmp_path / "full"))
    assert_same_weights(tmp_path / "full/checkpoint_last.pt", tmp_path / "split/checkpoint_last.pt")
    assert_same_weights(tmp_path / "full/checkpoint_best.pt", tmp_path / "split/checkpoint_best.pt")


def test_a_signal_in_the_last_update_of_an_epoch_finishes_the_epoch_first(tmp_path, monkeypatch):
    common = ["task.epochs=3", "checkpoint_interval_s=1e9"]
    full = train(compose_config(*common), str(tmp_path / "full"))
    signal_after_updates(monkeypatch, 17)  # the last update of epoch 1
    with pytest.raises(TrainingInterrupted):
        train(compose_config(*common), str(tmp_path / "split"))
    state = torch.load(tmp_path / "split/checkpoint_last.pt", weights_only=True)
    assert state["epoch"] == 1 and "position" not in state
    assert len(read_rows(tmp_path / "split")) == 1
    monkeypatch.undo()  # the real progress bar again
    assert without_clocks(train(compose_config(*common, "resume=true"), str(tmp_path / "split"))) == without_clocks(full)


def test_a_signal_during_the_epochs_logging_still_writes_checkpoint_last(tmp_path, monkeypatch):
    # The signal lands after the epoch's checkpoint decision (here in the CSV write), which found
    # no checkpoint due: the loop must write one before it stops.
    common = ["task.epochs=3", "checkpoint_interval_s=1e9"]
    full = train(compose_config(*common), str(tmp_path / "full"))
    real = loop.write_rows

    def write_then_signal(path, rows):
        real(path, rows)
        if len(rows) == 1:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(loop, "write_rows", write_then_signal)
    with pytest.raises(TrainingInterrupted):
        train(compose_config(*common), str(tmp_path / "split"))
    state = torch.load(tmp_path / "split/checkpoint_last.pt", weights_only=True)
    assert state["epoch"] == 1 and "position" not in state
    assert torch.load(tmp_path / "split/checkpoint_best.pt", weights_only=True)["epoch"] == 1
    monkeypatch.undo()
    assert without_clocks(train(compose_config(*common, "resume=true"), str(tmp_path / "split"))) == without_clocks(full)


def test_a_second_signal_stops_at_once_and_handlers_are_restored():
    previous = signal.getsignal(signal.SIGINT)
    with StopRequest() as request:
        request.armed = True
        os.kill(os.getpid(), signal.SIGINT)
        assert request.requested == signal.SIGINT
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is previous


def test_before_the_loop_is_armed_ctrl_c_stops_at_once():
    with StopRequest() as request, pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
    assert request.requested is None


def test_disabled_under_torchrun_leaves_the_handlers_alone():
    previous = signal.getsignal(signal.SIGINT)
    with StopRequest(enabled=False):
        assert signal.getsignal(signal.SIGINT) is previous


@pytest.mark.slow
def test_ctrl_c_on_the_command_line_then_resume_equals_an_uninterrupted_run(tmp_path):
    """The user's view: Ctrl-C (SIGINT to the process) during the first epochs, before any timed
    checkpoint; the run says how to resume, exits 130, and resume=true finishes it exactly."""
    args = ["task=digits", "model=lenet", "loss=ce", "task.epochs=8", "progress=false",
            "tensorboard=false"]
    env = dict(os.environ, OMP_NUM_THREADS="1", HYDRA_FULL_ERROR="0")
    command = [sys.executable, "-m", "fairseq_dynloss.trainer", *args]
    process = subprocess.Popen(command + [f"hydra.run.dir={tmp_path / 'split'}"], cwd=REPO, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = []
    for line in process.stdout:  # the first epoch's log line: training is under way
        output.append(line)
        if "epoch 1 |" in line:
            process.send_signal(signal.SIGINT)
            break
    output += process.stdout.readlines()
    assert process.wait(timeout=120) == 128 + signal.SIGINT, "".join(output)[-3000:]
    text = "".join(output)
    assert "interrupted (SIGINT)" in text and "resume with resume=true" in text
    assert "Traceback" not in text
    state = torch.load(tmp_path / "split/checkpoint_last.pt", weights_only=True)
    assert state["epoch"] < 8
    resumed = subprocess.run(command + [f"hydra.run.dir={tmp_path / 'split'}", "resume=true"], cwd=REPO,
                             env=env, capture_output=True, text=True, timeout=240)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    full = subprocess.run(command + [f"hydra.run.dir={tmp_path / 'full'}"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=240)
    assert full.returncode == 0, full.stderr[-3000:]
    assert without_clocks(read_rows(tmp_path / "split")) == without_clocks(read_rows(tmp_path / "full"))
    assert_same_weights(tmp_path / "full/checkpoint_last.pt", tmp_path / "split/checkpoint_last.pt")
