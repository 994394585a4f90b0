"""controller=ala on metric-learning losses (digits_metric, reward recall@1): the objectives at
their initial Phi equal the library losses, a run moves Phi by multiples of beta inside the loss's
bounds, resume equals the uninterrupted run, the window metric follows metric_every, and bad
settings are refused before anything is written."""

import csv

import pytest
import torch
import torch.nn.functional as F
from trainer_helpers import compose_config, without_clocks

from fairseq_dynloss.controllers import ControllerError, PairPolicy, save_controller
from fairseq_dynloss.losses.metric_ala import MetricLossError
from fairseq_dynloss.metrics.retrieval import recall_at_k
from fairseq_dynloss.trainer import train
from fairseq_dynloss.trainer.ala import _recall_at_k
from fairseq_dynloss.trainer.registry import ConfigError, build_objective

# 760 training images in batches of 64 (groups of 4 per class): 11 updates per epoch.
METRIC = ["task=digits_metric", "optim=adam", "optim.lr=0.001", "controller=ala",
          "controller.reward_metric=recall@1", "controller.window=3", "controller.val_subset=120",
          "tensorboard=false"]


def read_csv(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("ala_loss,library_loss", [("triplet_mixture", "triplet"), ("margin_mixture", "margin")])
def test_mixture_objectives_at_their_initial_phi_equal_the_library_objectives(ala_loss, library_loss):
    mine = build_objective(compose_config("task=digits_metric", f"loss={ala_loss}").loss, None, 16)
    library = build_objective(compose_config("task=digits_metric", f"loss={library_loss}").loss, None, 16)
    g = torch.Generator().manual_seed(0)
    outputs = torch.randn(24, 16, generator=g, dtype=torch.float64)
    labels = torch.arange(6).repeat_interleave(4)
    torch.manual_seed(1)  # the distance-weighted miner samples
    expected = library(outputs, labels)
    torch.manual_seed(1)
    torch.testing.assert_close(mine(outputs, labels), expected)
    torch.testing.assert_close(mine.eval_loss(outputs, labels), library.eval_loss(outputs, labels))
    # the validation loss keeps the initial Phi while the controller moves phi_values
    before = mine.eval_loss(outputs, labels)
    mine.phi_values.copy_(torch.tensor([0.5, 1.0, 0.0, 0.0]))
    assert mine.eval_loss(outputs, labels) == before
    assert "phi_values" in mine.state_dict() and "phi_reference" not in mine.state_dict()
    torch.testing.assert_close(mine.predict(outputs), F.normalize(outputs, dim=1))


def test_device_recall_equals_the_retrieval_metric():
    g = torch.Generator().manual_seed(0)
    embeddings, labels = torch.randn(50, 4, generator=g), torch.randint(0, 5, (50,), generator=g)
    for k in (1, 3, 10):
        assert _recall_at_k(embeddings, labels, k).item() == pytest.approx(recall_at_k(embeddings, labels, [k])[k])


@pytest.mark.parametrize("loss,names,bounds,start", [
    ("margin_mixture", ["linear", "square", "log1p", "expm1"], (0.0, 2.0), [1.0, 0.0, 0.0, 0.0]),
    ("focal_weighting", ["phi1", "phi2"], (0.1, 50.0), [2.0, 10.0]),
])
def test_metric_ala_run_moves_phi_by_beta_steps_inside_the_bounds(tmp_path, loss, names, bounds, start):
    history = train(compose_config(*METRIC, f"loss={loss}", "task.epochs=2", "controller.base_beta=0.5"),
                    str(tmp_path))
    rows = read_csv(tmp_path / "ala_log.csv")
    assert len(rows) == 2 * 11 // 3
    assert rows[0]["reward"] == "" and {float(r["reward"]) for r in rows[1:]} <= {-1.0, 0.0, 1.0}
    assert all(0.0 <= float(r["metric"]) <= 100.0 for r in rows)
    assert all(sum(int(r[f"actions_{k}"]) for k in ("minus", "zero", "plus")) == len(names) for r in rows)
    phi = torch.load(tmp_path / "checkpoint_last.pt", weights_only=True)["student"]["objective.phi_values"]
    beta = 0.5 / len(names) ** 0.5
    steps = (phi - torch.tensor(start)) / beta
    inside = (phi > bounds[0]) & (phi < bounds[1])  # a clamped entry need not sit on the beta grid
    assert torch.allclose(steps[inside], steps[inside].round(), atol=1e-4)
    assert not torch.equal(phi, torch.tensor(start))
    assert ((phi >= bounds[0]) & (phi <= bounds[1])).all()
    assert [float(rows[-1][f"phi_{n}"]) for n in names] == pytest.approx(phi.tolist())
    assert f"phi_{names[0]}" in history[-1] and 0.0 <= history[-1]["test_recall@1"] <= 100.0
    assert float(rows[-1]["controller_time"]) == pytest.approx(
        sum(float(rows[-1][f"time_{k}"]) for k in ("metric", "state", "policy")))


def test_metric_ala_resume_equals_an_uninterrupted_run(tmp_path):
    # window 4 does not divide the 11 updates of an epoch: the checkpoint falls mid-window
    common = [*METRIC, "loss=margin_mixture", "controller.window=4", "task.epochs=2"]
    full = train(compose_config(*common), str(tmp_path / "full"))
    train(compose_config(*common, "stop_after_epoch=1"), str(tmp_path / "split"))
    resumed = train(compose_config(*common, "resume=true"), str(tmp_path / "split"))
    assert without_clocks(resumed) == without_clocks(full)
    assert without_clocks(read_csv(tmp_path / "split/ala_log.csv")) == without_clocks(read_csv(tmp_path / "full/ala_log.csv"))
    a = torch.load(tmp_path / "full/checkpoint_last.pt", weights_only=True)
    b = torch.load(tmp_path / "split/checkpoint_last.pt", weights_only=True)
    for key in a["student"]:
        assert torch.equal(a["student"][key], b["student"][key]), key
    for key, value in a["controller"]["controller"]["learner"]["policy"].items():
        assert torch.equal(value, b["controller"]["controller"]["learner"]["policy"][key]), key


def test_metric_every_window_measures_only_the_last_update(tmp_path):
    # metric_every = K: M_t is the metric after the window's last update, weight gamma^0 = 1
    train(compose_config(*METRIC, "loss=focal_weighting", "task.epochs=1", "controller.metric_every=3"),
          str(tmp_path))
    rows = read_csv(tmp_path / "ala_log.csv")
    metrics = [float(r["metric"]) for r in rows]
    assert [float(r["window_metric"]) for r in rows] == pytest.approx(metrics)
    for previous, current, row in zip(metrics, metrics[1:], rows[1:]):  # recall: higher is better
        assert float(row["reward"]) == (current > previous) - (current < previous)


@pytest.mark.parametrize("override,error,match", [
    ("controller.reward_metric=error", ControllerError, "'error' is not available for metric learning"),
    ("controller.reward_metric=recall@top", ControllerError, "expected recall@K with an integer K >= 1"),
    ("controller.reward_metric=ndcg", ControllerError, "unknown reward metric 'ndcg'"),
    ("controller.metric_every=2", ControllerError, "metric_every=2 does not divide window K=3"),
    ("controller.metric_every=0", ControllerError, "metric_every=0"),
    ("controller.window=0", ControllerError, "window=0"),
    ("controller.base_beta=0", ControllerError, "beta=0"),
])
def test_bad_metric_ala_settings_are_refused_before_anything_is_written(tmp_path, override, error, match):
    # the trainer's config rules (ConfigError) or the controller's own checks (ControllerError)
    with pytest.raises((error, ConfigError), match=match):
        train(compose_config(*METRIC, "loss=margin_mixture", "task.epochs=1", override), str(tmp_path))
    assert not [p for p in tmp_path.iterdir() if p.name != ".dynloss-train.lock"]  # the run-folder lock


@pytest.mark.parametrize("override,error,match", [
    ("controller.reward_metric=recall@200", ControllerError, "recall@200 needs more than 200 validation examples"),
    ("controller.val_subset=2", ControllerError, "needs two classes and a class with two examples"),
    ("loss.phi_init=[1.0,0.0]", MetricLossError, "phi_init has 2 values"),
    ("loss.transforms=[linear,cube,log1p,expm1]", MetricLossError, "'cube'"),
])
def test_settings_that_need_the_data_are_refused_before_training(tmp_path, override, error, match):
    with pytest.raises(error, match=match):
        train(compose_config(*METRIC, "loss=margin_mixture", "task.epochs=1", override), str(tmp_path))
    written = {p.name for p in tmp_path.iterdir()}
    assert not written & {"checkpoint_last.pt", "ala_log.csv", "ala_controller.pt"}, written  # nothing trained


def test_bad_focal_scales_are_refused():
    with pytest.raises(MetricLossError, match=r"phi_init=\[0.0, 10.0\]; expected finite values in \[0.1, 50.0\]"):
        build_objective(compose_config("task=digits_metric", "loss=focal_weighting", "loss.phi_init=[0.0,10.0]").loss,
                        None, 8)
    with pytest.raises(MetricLossError, match="expected a lower bound > 0"):
        build_objective(compose_config("task=digits_metric", "loss=focal_weighting", "loss.phi_min=0.0").loss,
                        None, 8)


def test_metric_policy_file_for_another_state_size_is_refused(tmp_path):
    source = tmp_path / "policy.pt"
    save_controller(str(source), PairPolicy(10 * 3 + 2 + 2))  # focal weighting's 2 elements
    with pytest.raises(ControllerError, match="feature size 34; this run builds states of feature size 36"):
        train(compose_config(*METRIC, "loss=margin_mixture", "task.epochs=1", f"controller.policy_path={source}"),
              str(tmp_path / "run"))


def test_ala_on_a_library_metric_loss_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="got loss=triplet"):
        train(compose_config(*METRIC, "loss=triplet", "task.epochs=1"), str(tmp_path))
