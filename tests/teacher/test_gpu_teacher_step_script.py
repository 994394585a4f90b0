"""scripts/gpu_teacher_step.py (run by scripts/gpu_check.sh on CUDA) works, here on CPU with a
tiny transformer: one table row per memory policy, finite positive times, the markdown file."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def test_tiny_teacher_step_on_cpu(tmp_path):
    out = tmp_path / "teacher_step.md"
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gpu_teacher_step.py"), "--device", "cpu", "--tiny",
         "--vocab", "200", "--tokens", "128", "--length", "16", "--unroll", "2", "--repeats", "1",
         "--out", str(out)],
        capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line for line in out.read_text().splitlines() if line.startswith("| ") and "policy" not in line]
    assert [row.split("|")[1].strip() for row in rows] == ["keep all", "checkpoint every step", "truncate 2"]
    for row in rows:
        teacher_s, plain_s = (float(cell) for cell in row.split("|")[2:4])
        assert teacher_s > 0 and plain_s > 0


def test_cuda_without_a_gpu_fails_clearly():
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "gpu_teacher_step.py"), "--device", "cuda"],
                          capture_output=True, text=True)
    import torch
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    assert done.returncode != 0 and "no CUDA device" in done.stderr
