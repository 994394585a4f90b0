"""dynloss-train's run folder (issue 17, items 3, 4, 8 and the resume message): one run at a
time, a resume refused when its settings differ, and nothing in the folder touched before the
decision."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from trainer_helpers import compose_config, run_cli

from fairseq_dynloss.trainer import train
from fairseq_dynloss.trainer.registry import ConfigError
from fairseq_dynloss.trainer.run_dir import LOCK_FILE, RunFolderBusy, locked

QUICK = ["task.epochs=2", "model.hidden=[32]", "checkpoint_interval_s=0"]


def snapshot(folder):
    """Every file under ``folder`` -> its bytes; but the lock file and Hydra's job log, which
    every start appends to (a refused one too, with its error)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != LOCK_FILE and p.suffix != ".log"}


def test_a_second_run_in_a_locked_folder_is_refused_and_changes_nothing(tmp_path):
    train(compose_config(*QUICK, "stop_after_epoch=1"), str(tmp_path))
    before = snapshot(tmp_path)
    with locked(str(tmp_path), rank=0):  # another run is in progress there
        result = run_cli(*QUICK, "resume=true", f"hydra.run.dir={tmp_path}")
        assert result.returncode != 0
        assert f"{tmp_path} is in use by another dynloss-train run (process {os.getpid()}" in result.stderr
        with pytest.raises(RunFolderBusy, match="in use by another dynloss-train run"):
            train(compose_config(*QUICK, "overwrite=true"), str(tmp_path))
    assert snapshot(tmp_path) == before
    history = train(compose_config(*QUICK, "resume=true"), str(tmp_path))  # released: it runs
    assert [row["epoch"] for row in history] == [1, 2]


def test_the_lock_of_a_killed_run_is_released(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\nfrom fairseq_dynloss.trainer.run_dir import locked\n"
        f"with locked({str(tmp_path)!r}, rank=0):\n    print('held', flush=True)\n    time.sleep(60)\n")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunFolderBusy, match=f"process {holder.pid}"):
            with locked(str(tmp_path), rank=0):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with locked(str(tmp_path), rank=0):  # kill -9 released it
        pass


@pytest.mark.parametrize("change, named", [
    (["seed=2"], ["seed: 1 -> 2"]),
    (["optim.lr=0.05", "optim.momentum=0.5"], ["optim.lr: 0.1 -> 0.05", "optim.momentum: 0.9 -> 0.5"]),
    (["task.epochs=1"], ["task.epochs: 2 -> 1"]),
    (["model.hidden=[16]"], ["model.hidden: [32] -> [16]"]),  # would not even load
])
def test_a_resume_with_other_settings_is_refused_naming_each_and_touching_nothing(tmp_path, change, named):
    train(compose_config(*QUICK, "stop_after_epoch=1"), str(tmp_path))
    before = snapshot(tmp_path)
    overrides = [o for o in QUICK if o.split("=")[0] not in {c.split("=")[0] for c in change}]
    with pytest.raises(ConfigError) as error:
        train(compose_config(*overrides, *change, "resume=true"), str(tmp_path))
    for difference in named:
        assert difference in str(error.value)
    assert snapshot(tmp_path) == before


def test_resume_and_overwrite_together_are_refused_before_anything_is_written(tmp_path):
    train(compose_config(*QUICK, "stop_after_epoch=1"), str(tmp_path))
    before = snapshot(tmp_path)
    with pytest.raises(ConfigError, match="resume=true and overwrite=true contradict each other"):
        train(compose_config(*QUICK, "resume=true", "overwrite=true"), str(tmp_path))
    assert snapshot(tmp_path) == before


def test_a_resume_may_add_epochs_and_change_how_it_runs(tmp_path):
    train(compose_config(*QUICK, "stop_after_epoch=1"), str(tmp_path))
    history = train(compose_config("task.epochs=3", "model.hidden=[32]", "checkpoint_interval_s=5",
                                   "tensorboard=false", "resume=true"), str(tmp_path))
    assert [row["epoch"] for row in history] == [1, 2, 3]


@pytest.mark.slow
def test_a_refused_cli_run_keeps_the_run_s_hydra_files(tmp_path):
    first = run_cli(*QUICK, "stop_after_epoch=1", f"hydra.run.dir={tmp_path}")
    assert first.returncode == 0, first.stderr[-2000:]
    assert "stop_after_epoch=1" in (tmp_path / ".hydra/overrides.yaml").read_text()
    before = snapshot(tmp_path)
    for refused in (["seed=5"], ["seed=5", "resume=true"]):  # checkpoint exists / other settings
        result = run_cli(*QUICK, *refused, f"hydra.run.dir={tmp_path}")
        assert result.returncode != 0
        assert snapshot(tmp_path) == before


def test_overwrite_starts_from_an_empty_folder(tmp_path):
    train(compose_config(*QUICK), str(tmp_path))
    for name in ("ala_log.csv", "ala_controller.pt", "teacher_states.csv", "phi.png",
                 ".checkpoint_last.ptab12cd34.tmp"):
        (tmp_path / name).write_text("from the previous run")
    (tmp_path / "child1").mkdir()
    (tmp_path / "child1" / "metrics.csv").write_text("from the previous run")
    (tmp_path / "notes.txt").write_text("the user's own file")
    train(compose_config(*QUICK, "overwrite=true", "loss=ce"), str(tmp_path))
    names = {p.name for p in tmp_path.iterdir()}
    assert not names & {"ala_log.csv", "ala_controller.pt", "teacher_states.csv", "phi.png", "child1",
                        ".checkpoint_last.ptab12cd34.tmp"}
    assert {"checkpoint_last.pt", "metrics.csv", "config.yaml", "notes.txt"} <= names


def test_temporaries_of_a_killed_write_are_removed_by_the_next_run(tmp_path):
    train(compose_config(*QUICK, "stop_after_epoch=1"), str(tmp_path))
    stale = tmp_path / ".checkpoint_last.ptx1y2z3w4.tmp"
    stale.write_bytes(b"half a checkpoint")
    train(compose_config(*QUICK, "resume=true"), str(tmp_path))
    assert not list(tmp_path.glob(".*.tmp"))


def test_resume_without_a_checkpoint_says_what_survives(tmp_path):
    (tmp_path / "metrics.csv").write_text("epoch,train_loss\n1,2.0\n")
    (tmp_path / "teacher_checkpoint.pt").write_bytes(b"phase (a) state")
    with pytest.raises(FileNotFoundError) as error:
        train(compose_config(*QUICK, "resume=true"), str(tmp_path))
    message = str(error.value)
    assert "no checkpoint" in message
    assert "teacher_checkpoint.pt: run again without resume=true and teacher training continues" in message
    assert "metrics.csv holds epochs of a run killed before its first checkpoint" in message
    assert "checkpoint_interval_s=0" in message


def test_a_corrupted_checkpoint_is_refused_naming_it(tmp_path):
    train(compose_config(*QUICK, "stop_after_epoch=1"), str(tmp_path))
    path = tmp_path / "checkpoint_last.pt"
    state = torch.load(path, weights_only=True)
    weight = next(iter(state["student"].values()))
    data = bytearray(path.read_bytes())
    at = data.find(weight.flatten()[:4].numpy().tobytes())
    assert at > 0
    data[at] ^= 0x40  # one flipped bit in a weight: torch loads it silently
    path.write_bytes(bytes(data))
    with pytest.raises(ConfigError, match=r"checkpoint_last\.pt' is corrupted"):
        train(compose_config(*QUICK, "resume=true"), str(tmp_path))
    path.write_bytes(b"")
    with pytest.raises(ConfigError, match=r"checkpoint_last\.pt' is empty \(0 bytes\)"):
        train(compose_config(*QUICK, "resume=true"), str(tmp_path))


def test_overwrite_keeps_the_files_the_run_reads(tmp_path):
    from fairseq_dynloss.trainer.run_dir import clear_run_files

    for name in ("teacher.pt", "ala_controller.pt", "metrics.csv"):
        (tmp_path / name).write_text("x")
    removed = clear_run_files(str(tmp_path), keep=[str(tmp_path / "teacher.pt")])
    assert sorted(removed) == ["ala_controller.pt", "metrics.csv"]
    assert [p.name for p in tmp_path.iterdir()] == ["teacher.pt"]
