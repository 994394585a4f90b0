"""csv_rows.write_rows: the one CSV writer of the run logs (metrics.csv, teacher_log.csv,
teacher_states.csv, ala_log.csv)."""

import csv
import os

import pytest

from fairseq_dynloss.csv_rows import write_rows


def read(path):
    with open(path, newline="") as handle:
        return list(csv.reader(handle))


def test_columns_in_first_seen_order_and_missing_cells_empty(tmp_path):
    path = tmp_path / "sub" / "log.csv"  # the folder is created
    write_rows(str(path), [{"epoch": 1, "loss": 0.5}, {"epoch": 2, "val": 3, "loss": 0.25}])
    assert read(path) == [["epoch", "loss", "val"], ["1", "0.5", ""], ["2", "0.25", "3"]]


def test_rewrite_replaces_the_file_whole(tmp_path):
    path = tmp_path / "log.csv"
    write_rows(str(path), [{"a": 1}, {"a": 2}, {"a": 3}])
    write_rows(str(path), [{"a": 1}, {"a": 2}])  # e.g. a resumed run's full history
    assert read(path) == [["a"], ["1"], ["2"]]


class Unprintable:
    def __str__(self):
        raise RuntimeError("disk full")


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "log.csv"
    write_rows(str(path), [{"a": 1}])
    with pytest.raises(RuntimeError, match="disk full"):
        write_rows(str(path), [{"a": 2}, {"a": Unprintable()}])
    assert read(path) == [["a"], ["1"]]
    assert os.listdir(tmp_path) == ["log.csv"]
