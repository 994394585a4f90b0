"""End to end: scripts/study.py on a tiny digits grid writes RESULTS.md whose numbers are the
runs' own (recomputed here from metrics.csv), and a re-run reuses the finished jobs, also from
the archive in another work folder."""

import csv
import os
import subprocess
import sys

import pytest

from fairseq_dynloss.study.stats import summarize

pytestmark = pytest.mark.slow
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_study(tmp_path, work="work"):
    command = [sys.executable, os.path.join(REPO, "scripts", "study.py"), "--parts", "digits",
               "--seeds", "2", "--digits-models", "mlp", "--digits-methods", "ce",
               "label_smoothing", "--digits-epochs", "2", "--no-aucpr",
               "--work", str(tmp_path / work), "--out", str(tmp_path / "RESULTS.md")]
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
    # A new checkout (another work folder): the same table from the archive, without a run.
    third = run_study(tmp_path, "elsewhere")
    assert ": done in" not in third.stdout + third.stderr
    assert not (tmp_path / "elsewhere" / "digits").exists()
    assert line in (tmp_path / "RESULTS.md").read_text().splitlines()


def test_study_mnist1d_part_tiny(tmp_path):
    """The mnist1d part: paired rows computed from the runs' own metrics.csv, the oracle's gap,
    and RESULTS.md assembled from its table's own file in results/; then, from another work
    folder (a new checkout), the same table from the archive in results/runs/ without a run."""
    def study(work):
        command = [sys.executable, os.path.join(REPO, "scripts", "study.py"), "--parts", "mnist1d",
                   "--mnist1d-seeds", "2", "--mnist1d-steps", "20", "--mnist1d-settings",
                   "pairflip40", "--mnist1d-models", "mnist1d_mlp", "--mnist1d-methods", "ce",
                   "forward_corrected", "--work", str(work), "--out", str(tmp_path / "RESULTS.md")]
        done = subprocess.run(command, capture_output=True, text=True, env=dict(
            os.environ, OMP_NUM_THREADS="1", DYNLOSS_DATA=str(tmp_path / "data")))
        assert done.returncode == 0, done.stderr[-3000:]
        return done

    study(tmp_path / "work")
    accuracy = {}
    for method in ("ce", "forward_corrected"):
        values = []
        for seed in (1, 2):
            folder = tmp_path / "work" / "mnist1d" / "pairflip40" / f"mnist1d_mlp_{method}_seed{seed}"
            with open(folder / "metrics.csv") as h:
                rows = list(csv.DictReader(h))
            values.append(100.0 - float(min(rows, key=lambda r: float(r["val_error"]))["test_error"]))
        accuracy[method] = values
    text = (tmp_path / "RESULTS.md").read_text()
    assert text.count("## MNIST-1D") == 1
    assert (tmp_path / "results" / "mnist1d--pairflip40--mnist1d_mlp.md").read_text().strip() in text
    line = next(l for l in text.splitlines() if l.startswith("| forward_corrected |"))
    s = summarize(accuracy["forward_corrected"])
    diffs = [b - a for a, b in zip(accuracy["ce"], accuracy["forward_corrected"])]
    assert f"{s.mean:.2f} ± {s.std:.2f}" in line
    assert f"{sum(diffs) / 2:+.2f} ± {summarize(diffs).std:.2f}" in line and "| 100 % |" in line
    archived = (tmp_path / "results" / "runs" / "mnist1d_pairflip40_mnist1d_mlp_ce_seed1.json").read_text()
    assert str(tmp_path / "work") not in archived and "<work>" in archived
    again = study(tmp_path / "elsewhere")
    assert ": done in" not in again.stdout + again.stderr
    assert not (tmp_path / "elsewhere" / "mnist1d" / "pairflip40").exists()
    assert line in (tmp_path / "RESULTS.md").read_text().splitlines()
