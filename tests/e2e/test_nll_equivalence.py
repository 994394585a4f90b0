"""With --nll-weight 1, dynamic_loss is fairseq's label-smoothed cross-entropy, update for update."""

import pytest

from fairseq_cli_runner import fairseq, json_logs, train_args

pytestmark = pytest.mark.slow


def updates(proc):
    return [r for r in json_logs(proc.stdout + proc.stderr) if "gnorm" in r and "train_wall" in r
            and "num_updates" in r and "epoch" in r and "update" in r]


def test_nll_weight_one_reproduces_label_smoothed_cross_entropy(toy_data_bin, tmp_path):
    data = toy_data_bin / "data-bin"
    common = ["--dropout", "0.1", "--max-update", "5", "--disable-validation", "--no-save"]
    ours = fairseq("train", *train_args(data, tmp_path / "a", "transformer", *common,
                                        "--criterion", "dynamic_loss", "--nll-weight", "1",
                                        "--label-smoothing", "0.1"))
    ref = fairseq("train", *train_args(data, tmp_path / "b", "transformer", *common,
                                       "--criterion", "label_smoothed_cross_entropy",
                                       "--label-smoothing", "0.1"))
    ours_logs, ref_logs = updates(ours), updates(ref)
    assert len(ours_logs) == len(ref_logs) == 5
    for a, b in zip(ours_logs, ref_logs):
        for key in ("loss", "nll_loss", "gnorm"):
            assert float(a[key]) == pytest.approx(float(b[key]), abs=1e-3), (key, a, b)
