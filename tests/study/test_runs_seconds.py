"""The study's cost column: CPU seconds when every row has them, wall seconds for older runs."""

import csv
import os

import pytest

from fairseq_dynloss.study.runs import teacher_seconds, training_seconds


def write(path, header, rows):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def test_cpu_time_is_summed_when_every_epoch_has_it(tmp_path):
    write(str(tmp_path / "metrics.csv"), ["epoch", "time", "cpu_time"], [[1, 5.0, 1.5], [2, 7.0, 2.25]])
    assert training_seconds(str(tmp_path)) == pytest.approx(3.75)


@pytest.mark.parametrize("rows", [[[1, 5.0], [2, 7.0]], [[1, 5.0, 1.5], [2, 7.0, ""]]])
def test_wall_time_when_cpu_time_is_missing_anywhere(tmp_path, rows):
    header = ["epoch", "time"] + (["cpu_time"] if len(rows[0]) == 3 else [])
    write(str(tmp_path / "metrics.csv"), header, rows)
    assert training_seconds(str(tmp_path)) == pytest.approx(12.0)


def test_teacher_phase_uses_the_same_rule(tmp_path):
    assert teacher_seconds(str(tmp_path)) == 0.0
    write(str(tmp_path / "teacher_log.csv"), ["step", "time", "cpu_time"], [[1, 0.5, 0.25], [2, 0.5, 0.25]])
    assert teacher_seconds(str(tmp_path)) == pytest.approx(0.5)


def test_an_online_teachers_steps_are_not_counted_twice(tmp_path):
    # online: the teacher steps run inside the epochs, whose CPU time training_seconds sums
    write(str(tmp_path / "metrics.csv"), ["epoch", "time", "cpu_time"], [[1, 5.0, 1.5]])
    write(str(tmp_path / "teacher_log.csv"), ["update", "dev_objective", "time"], [[0, 0.1, 0.5], [4, 0.2, 0.5]])
    assert teacher_seconds(str(tmp_path)) == 0.0
    assert training_seconds(str(tmp_path)) == pytest.approx(1.5)
