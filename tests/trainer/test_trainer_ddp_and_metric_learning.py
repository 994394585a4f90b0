"""Data-parallel training (2 gloo processes on CPU) against one process on the same global
batch, and metric learning end to end on a tiny SOP-format dataset."""

import sys
from pathlib import Path

import pytest
import torch
from trainer_helpers import compose_config, run_cli

from fairseq_dynloss.trainer import train

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))


@pytest.mark.slow
def test_two_gloo_processes_match_one_process_on_the_same_global_batch(tmp_path):
    # 1077 examples in batches of 64: the last global batch (53) splits 27/26 across ranks,
    # which exercises the loss weighting. MLP: no BatchNorm, so the match is exact up to
    # float32 summation order.
    common = ["task=digits", "model=mlp", "loss=ce", "task.epochs=1", "device=cpu"]
    single = run_cli(*common, f"hydra.run.dir={tmp_path / 'one'}")
    assert single.returncode == 0, single.stderr[-3000:]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m"]
    double = run_cli(*common, f"hydra.run.dir={tmp_path / 'two'}", launcher=launcher)
    assert double.returncode == 0, double.stderr[-3000:]
    logs = "".join(p.read_text() for p in (tmp_path / "two").glob("*.log"))
    assert "cpu x2" in logs
    one = torch.load(tmp_path / "one/checkpoint_last.pt", weights_only=True)
    two = torch.load(tmp_path / "two/checkpoint_last.pt", weights_only=True)
    for key, value in one["student"].items():
        torch.testing.assert_close(two["student"][key], value, rtol=1e-4, atol=1e-5)
    assert two["history"][0]["train_loss"] == pytest.approx(one["history"][0]["train_loss"], rel=1e-5)
    assert two["history"][0]["test_error"] == pytest.approx(one["history"][0]["test_error"], abs=0.3)


@pytest.mark.parametrize("loss", ["triplet", "margin"])
def test_metric_learning_on_sop_format_files(tmp_path, loss):
    from test_image_dataset_parsers import make_sop

    make_sop(tmp_path / "data", train_classes=[c for c in range(1, 7) for _ in range(4)],
             test_classes=[c for c in range(7, 10) for _ in range(4)])
    cfg = compose_config("task=sop", "model=embedding_resnet", f"loss={loss}", "task.epochs=2",
                         "task.batch_size=8", "task.m_per_class=2", "task.resize=36", "task.crop=32",
                         "task.num_train_classes=6", "model.width=8", "model.embedding_dim=16",
                         "optim=adam", f"data_dir={tmp_path / 'data'}")
    history = train(cfg, str(tmp_path / "run"))
    assert len(history) == 2
    # 12 test images: recall@1 and recall@10 are defined, @100 and @1000 are not (k >= N).
    assert 0.0 <= history[-1]["test_recall@1"] <= 100.0
    assert history[-1]["test_recall@10"] == pytest.approx(100.0)
    assert history[-1]["test_recall@100"] != history[-1]["test_recall@100"]  # NaN
    assert (tmp_path / "run/curves.png").exists()
