"""fairseq-train with the plugin resumes exactly across an epoch boundary (issue 17, item 1):
a run stopped after epoch 1 and resumed to epoch 2 ends with the weights, bit for bit, of the
run that trained 2 epochs straight, for the plugin's own task (whose controller state is in the
checkpoint too)."""

import argparse

import pytest
import torch
from fairseq_cli_runner import fairseq, json_logs, train_args

pytestmark = pytest.mark.slow


def final_weights(save_dir):
    with torch.serialization.safe_globals([argparse.Namespace]):
        return torch.load(save_dir / "checkpoint_last.pt", weights_only=True)["model"]


def epoch_of_each_update(text):
    return {int(r["num_updates"]): int(r["epoch"]) for r in json_logs(text) if "loss" in r and "epoch" in r}


# The recipes' --task translation --criterion dynamic_loss case is resumed across epoch 1's end
# in test_fairseq_checkpoint_copy.py (after a kill during the copy), so it is not repeated here.
@pytest.mark.parametrize("task_args", [
    ["--task", "translation_ala", "--criterion", "dynamic_loss", "--phi-source", "ala",
     "--phi-parametrisation", "bucketed", "--phi-buckets", "4", "--ala-interval", "3",
     "--ala-val-batches", "2", "--ala-val-max-sentences", "16", "--ala-horizon", "60"],
], ids=["translation_ala"])
def test_resume_after_epoch_one_equals_the_straight_run(toy_data_bin, tmp_path, task_args):
    data = toy_data_bin / "data-bin"
    common = lambda save: train_args(data, save, "transformer", *task_args, "--dropout", "0.1")
    straight = fairseq("train", *common(tmp_path / "straight"), "--max-epoch", "2")
    fairseq("train", *common(tmp_path / "split"), "--max-epoch", "1")
    resumed = fairseq("train", *common(tmp_path / "split"), "--max-epoch", "2")
    assert "loaded checkpoint" in (resumed.stdout + resumed.stderr).lower()
    # the resumed job trained epoch 2 only, the same updates as the straight run's
    epochs = epoch_of_each_update(straight.stdout + straight.stderr)
    resumed_epochs = epoch_of_each_update(resumed.stdout + resumed.stderr)
    assert set(resumed_epochs.values()) == {2}
    assert resumed_epochs == {u: e for u, e in epochs.items() if e >= 2}
    a, b = final_weights(tmp_path / "straight"), final_weights(tmp_path / "split")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
