"""A kill during fairseq's checkpoint copy leaves every checkpoint whole (issue 17, item 2).

fairseq saves the first checkpoint name atomically and *copies* it to the others; the plugin
makes the copies atomic (temporary file + fsync + rename). The slow test kills fairseq-train
with SIGKILL in the middle of the copy of epoch 2 and resumes from epoch 1's end: the result
equals the straight run bit for bit, which also tests the exact resume across an epoch boundary
(issue 17, item 1) of the recipes' ``--task translation --criterion dynamic_loss``. The fast
ones check the patched copy and the clear refusal of a checkpoint an older run left empty or
truncated.
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys

import pytest
import torch
from fairseq_cli_runner import fairseq, train_args

import fairseq_dynloss
from fairseq_dynloss.checkpoint_compat import check_checkpoint_file

# Runs fairseq-train; the N-th copy of a checkpoint writes half of its bytes, then SIGKILLs the
# process (kill -9 at that moment, reproducibly).
KILL_DURING_COPY = """
import os, shutil, signal, sys
die_at, calls, real = int(sys.argv[1]), [0], shutil.copyfile
def copy_then_die(src, dst, *args, **kwargs):
    if os.path.basename(src).startswith("checkpoint"):
        calls[0] += 1
        if calls[0] == die_at:
            with open(src, "rb") as source, open(dst, "wb") as target:
                target.write(source.read()[: os.path.getsize(src) // 2])
                target.flush()
            os.kill(os.getpid(), signal.SIGKILL)
    return real(src, dst, *args, **kwargs)
shutil.copyfile = copy_then_die
from fairseq_cli.train import cli_main
sys.argv = ["fairseq-train", *sys.argv[2:]]
cli_main()
"""


def checkpoints_are_whole(folder):
    for path in folder.glob("checkpoint*.pt"):
        check_checkpoint_file(str(path))  # raises on an empty or truncated file
        with torch.serialization.safe_globals([argparse.Namespace]):
            torch.load(path, weights_only=True)


@pytest.mark.slow
def test_kill_during_the_checkpoint_copy_then_resume_equals_the_straight_run(toy_data_bin, tmp_path):
    data = toy_data_bin / "data-bin"
    common = lambda save: train_args(data, save, "transformer", "--criterion", "dynamic_loss",
                                     "--phi-parametrisation", "bucketed", "--phi-buckets", "4")
    killed = subprocess.run([sys.executable, "-c", KILL_DURING_COPY, "2",
                             *map(str, common(tmp_path / "killed")), "--max-epoch", "2"],
                            capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    checkpoints_are_whole(tmp_path / "killed")  # fairseq's own copy left half a file here
    assert not [p for p in (tmp_path / "killed").iterdir() if p.stat().st_size == 0]
    fairseq("train", *common(tmp_path / "killed"), "--max-epoch", "2")
    fairseq("train", *common(tmp_path / "straight"), "--max-epoch", "2")
    with torch.serialization.safe_globals([argparse.Namespace]):
        a, b = (torch.load(tmp_path / name / "checkpoint_last.pt", weights_only=True)["model"]
                for name in ("straight", "killed"))
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.fixture
def patched_fairseq():
    pytest.importorskip("fairseq")
    fairseq_dynloss.register_with_fairseq()
    from fairseq.file_io import PathManager
    return PathManager


def test_an_interrupted_copy_leaves_the_old_file_and_no_temporary(patched_fairseq, tmp_path, monkeypatch):
    src, dst = tmp_path / "checkpoint_best.pt", tmp_path / "checkpoint_last.pt"
    torch.save({"new": torch.ones(3)}, src)
    torch.save({"old": torch.zeros(3)}, dst)
    before = dst.read_bytes()

    def half_then_interrupt(source, target, *args, **kwargs):
        with open(source, "rb") as s, open(target, "wb") as t:
            t.write(s.read()[:10])
        raise KeyboardInterrupt

    monkeypatch.setattr(shutil, "copyfile", half_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        patched_fairseq.copy(str(src), str(dst), overwrite=True)
    assert dst.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_best.pt", "checkpoint_last.pt"]
    monkeypatch.undo()
    assert patched_fairseq.copy(str(src), str(dst), overwrite=True) is True
    assert dst.read_bytes() == src.read_bytes()
    assert oct(dst.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.parametrize("damage", ["empty", "truncated"])
def test_a_damaged_checkpoint_is_refused_naming_it_and_the_valid_ones(patched_fairseq, tmp_path, damage):
    from fairseq import checkpoint_utils

    good = tmp_path / "checkpoint_best.pt"
    torch.save({"model": {"w": torch.ones(2)}}, good)
    bad = tmp_path / "checkpoint_last.pt"
    bad.write_bytes(b"" if damage == "empty" else good.read_bytes()[:-40])
    with pytest.raises(RuntimeError, match=r"checkpoint_last\.pt is (empty|truncated).*checkpoint_best\.pt"):
        checkpoint_utils.load_checkpoint_to_cpu(str(bad))
    good.unlink()
    with pytest.raises(RuntimeError, match="no other valid checkpoint"):
        checkpoint_utils.load_checkpoint_to_cpu(str(bad))
