"""End to end: scripts/study.py on a tiny digits grid writes RESULTS.md whose numbers are the
runs' own (recomputed here from metrics.csv), and a re-run reuses the finished jobs."""

import csv
import os
import subprocess
import sys

import pytest

from fairseq_dynloss.study.stats import summarize

pytestmark = pytest.mark.slow
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_study(tmp_path):
    command = [sys.executable, os.path.join(REPO, "scripts", "study.py"), "--parts", "digits",
               "--seeds", "2", "--digits-models", "mlp", "--digits-methods", "ce",
               "label_smoothing", "--digits-epochs", "2", "--no-aucpr",
               "--work", str(tmp_path / "work"), "--out", str(tmp_path / "RESULTS.md")]
    done = subprocess.run(command, capture_output=True, text=True,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_study_digits_tiny_grid(tmp_path):
    first = run_study(tmp_path)
    assert "digits_mlp_ce_seed1: done" in first.stdout + first.stderr
    text = (tmp_path / "RESULTS.md").read_text()
    errors = []
    for seed in (1, 2):
        with open(tmp_path / "work" / "digits" / f"mlp_label_smoothing_seed{seed}" / "metrics.csv") as h:
            rows = list(csv.DictReader(h))
        best = min(rows, key=lambda r: float(r["val_error"]))
        errors.append(float(best["test_error"]))
    s = summarize(errors)
    line = next(l for l in text.splitlines() if l.startswith("| label_smoothing |"))
    assert f"{s.mean:.2f} ± {s.std:.2f}" in line
    assert "| ce | 2 |" in text
    # Everything is recorded: a second run starts no job.
    second = run_study(tmp_path)
    assert ": done in" not in second.stdout + second.stderr
    rows = [l for l in (tmp_path / "RESULTS.md").read_text().splitlines() if l.startswith("| label_smoothing |")]
    assert rows == [line]
