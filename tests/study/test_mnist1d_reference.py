"""The mnist1d_reference part: its runs follow the reference protocol, and its table reports the
test accuracy after the LAST update of each run (nothing is selected) against the published
numbers, with the ±3-point verdict."""

import csv
import os

import pytest

from fairseq_dynloss.study import mnist1d_reference as ref
from fairseq_dynloss.study.jobs import JobRecord, write_record


def write_metrics(folder, test_errors):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "metrics.csv"), "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["epoch", "train_loss", "val_loss", "val_error", "test_loss", "test_error",
                         "lr", "time"])
        for epoch, error in enumerate(test_errors, 1):
            writer.writerow([epoch, 1.0, "nan", "nan", 1.0, error, 0.01, 0.1])


def test_jobs_use_the_reference_schedule(tmp_path):
    jobs = ref.jobs([1, 2], str(tmp_path), "python", {})
    assert len(jobs) == 3 * 2
    command = jobs[0].command
    for override in ("model=mnist1d_mlp", "optim=adam", "optim.lr=0.01", "task.max_steps=8000",
                     "task.val_size=0", "loss=ce", "seed=1"):
        assert override in command, (override, command)
    assert not any(o.startswith("task.label_noise") for o in command)
    # its own folders: the 3000-update clean table's runs are never overwritten
    assert all(os.sep + "mnist1d_reference" + os.sep in job.outputs[0] for job in jobs)


def test_table_reports_the_last_update_against_the_published_numbers(tmp_path):
    work = str(tmp_path)
    # the last epoch counts, not the best one (an earlier epoch with a lower error is ignored)
    finals = {"mnist1d_mlp": (34.0, 36.0), "mnist1d_cnn": (6.0, 8.0), "mnist1d_gru": (14.0, 12.0)}
    for model, errors in finals.items():
        for seed, error in zip((1, 2), errors):
            write_metrics(ref.run_dir(work, model, seed), [50.0, 1.0, error])
    for job in ref.jobs([1, 2], work, "python", {}):  # the records the study keeps of the runs
        write_record(os.path.join(work, "state"), JobRecord(job.name, 1.0, 0, summary=job.summary()))
    text = ref.table([1, 2], work)
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| `")}
    mlp = [c.strip() for c in rows["`mnist1d_mlp`"].split("|")]
    assert mlp[3].startswith("65.0 ± 1.4 (66.0, 64.0)")  # std of (66, 64) = 1.414
    assert mlp[4] == "68" and mlp[5] == "-3.0" and mlp[6] == "yes"
    cnn = [c.strip() for c in rows["`mnist1d_cnn`"].split("|")]
    assert cnn[3].startswith("93.0 ± 1.4") and cnn[5] == "-1.0" and cnn[6] == "yes"
    gru = [c.strip() for c in rows["`mnist1d_gru`"].split("|")]
    assert gru[3].startswith("87.0 ± 1.4") and gru[5] == "-4.0" and gru[6] == "no"


def test_an_empty_run_is_refused(tmp_path):
    write_metrics(str(tmp_path), [])
    with pytest.raises(ValueError, match="no epochs"):
        ref.last_test_accuracy(os.path.join(str(tmp_path), "metrics.csv"))
