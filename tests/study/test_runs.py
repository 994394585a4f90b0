"""Reading a finished run: the best-validation epoch picks the reported numbers."""

import csv

import pytest

from fairseq_dynloss.study.runs import best_val_accuracy


def test_best_val_accuracy_reads_the_best_validation_epoch_first_on_ties(tmp_path):
    with open(tmp_path / "metrics.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["epoch", "val_error", "test_error"])
        writer.writerows([[1, 40.0, 45.0], [2, 30.0, 38.0], [3, 30.0, 20.0], [4, 35.0, 10.0]])
    # epoch 2: the lowest validation error, first of the tie; test's own best (epoch 4) is unseen
    assert best_val_accuracy(str(tmp_path), "val") == pytest.approx(70.0)
    assert best_val_accuracy(str(tmp_path), "test") == pytest.approx(62.0)
    with pytest.raises(ValueError, match="'train': expected 'val' or 'test'"):
        best_val_accuracy(str(tmp_path), "train")
