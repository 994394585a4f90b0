"""A row of teacher_states.csv torn by a kill during its append does not survive a resume
(issue 17, item 8)."""

import csv

from trainer_helpers import compose_config

from fairseq_dynloss.csv_rows import read_complete_rows
from fairseq_dynloss.trainer import train

# episodic: phase (b) writes one row per update from a frozen teacher (online mode is the L2T
# tests' business; this test is about the file)
L2T = ["loss=dynamic", "loss.form=paper", "teacher=l2t", "teacher.mode=episodic", "teacher.steps=1", "teacher.unroll=2",
       "teacher.dev_batches=1", "model.hidden=[16]", "task.epochs=2", "checkpoint_interval_s=0"]


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_read_complete_rows_drops_a_torn_last_row_and_short_rows(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("update,a,b\r\n0,1.5,2\r\n1,2.5\r\n2,3.5,4\r\n3,4.5,5,6\r\n4,5.")
    assert read_complete_rows(str(path)) == [{"update": "0", "a": "1.5", "b": "2"},
                                             {"update": "2", "a": "3.5", "b": "4"}]
    path.write_text("update,a\r\n0,1\r\n")
    assert read_complete_rows(str(path)) == [{"update": "0", "a": "1"}]


def test_a_torn_row_is_dropped_on_resume(tmp_path):
    train(compose_config(*L2T), str(tmp_path / "straight"))
    split = tmp_path / "split"
    train(compose_config(*L2T, "stop_after_epoch=1"), str(split))
    # the kill came while epoch 2's first row ("17,...") was being appended: "1" reads as update 1
    with open(split / "teacher_states.csv", "a", newline="") as handle:
        handle.write("1")
    train(compose_config(*L2T, "resume=true"), str(split))
    assert read_csv(split / "teacher_states.csv") == read_csv(tmp_path / "straight" / "teacher_states.csv")
    assert [int(r["update"]) for r in read_csv(split / "teacher_states.csv")] == list(range(34))
