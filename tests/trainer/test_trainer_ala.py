"""controller=ala in dynloss-train on the offline digits task: a run logs rewards and moves Phi,
resume equals the uninterrupted run, policy transfer loads, and bad settings are refused."""

import csv
import math

import pytest
import torch
from trainer_helpers import compose_config, without_clocks

from fairseq_dynloss.controllers import (
    ControllerError, PairPolicy, load_controller, pair_feature_size, save_controller,
)
from fairseq_dynloss.trainer import train
from fairseq_dynloss.trainer.registry import ConfigError

# Small and quick: 17 updates per epoch, a window every 4 updates, 180 validation examples.
ALA = ["loss=dynamic", "loss.form=paper", "controller=ala", "controller.window=4", "controller.val_subset=180",
       "optim=adam", "optim.lr=0.003"]


def read_csv(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


def test_ala_run_logs_rewards_moves_phi_and_writes_its_files(tmp_path):
    history = train(compose_config(*ALA, "task.epochs=3", "plot_every=3", "controller.base_beta=1.0",
                                   "controller.clamp=[-2.0,2.0]"), str(tmp_path))
    assert len(history) == 3
    rows = read_csv(tmp_path / "ala_log.csv")
    assert len(rows) == 3 * 17 // 4  # one row per window of K = 4 updates
    assert [int(r["update"]) for r in rows] == [4 * (k + 1) for k in range(len(rows))]
    assert rows[0]["reward"] == ""  # the first window only sets M_0
    rewards = [float(r["reward"]) for r in rows[1:]]
    assert set(rewards) <= {-1.0, 0.0, 1.0} and len(rewards) == len(rows) - 1
    for r in rows:
        assert 0.0 <= float(r["metric"]) <= 100.0
        assert 0.0 < float(r["entropy"]) <= 1.0987  # <= log 3
        assert sum(int(r[f"actions_{k}"]) for k in ("minus", "zero", "plus")) == 90  # 10 x 9 pairs
    # Phi's off-diagonal moved away from the identity, and the diagonal stayed 1.
    phi = torch.load(tmp_path / "checkpoint_last.pt", weights_only=True)["student"]["objective.phi.matrix"]
    off = phi - torch.diag(phi.diagonal())
    assert off.abs().max() > 0
    assert float(rows[-1]["phi_offdiag_mean_abs"]) == pytest.approx(off.abs().sum().item() / 90, rel=1e-5)
    assert torch.equal(phi.diagonal(), torch.ones(10))
    # every entry moved by multiples of beta = base_beta / sqrt(90) (12 windows: never clamped)
    steps = off / (1.0 / 90 ** 0.5)
    assert torch.allclose(steps, steps.round(), atol=1e-4) and steps.abs().max() <= len(rows)
    for name in ("config.yaml", "metrics.csv", "curves.png", "phi.png", "phi_offdiag.png",
                 "ala_controller.pt", "ala_log.csv"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert "name: ala" in (tmp_path / "config.yaml").read_text()
    assert "phi_offdiag_mean_abs" in read_csv(tmp_path / "metrics.csv")[0]
    # written at the end of training although the last write was less than 30 s earlier
    final = torch.load(tmp_path / "checkpoint_last.pt", weights_only=True)["controller"]["controller"]
    saved = load_controller(str(tmp_path / "ala_controller.pt")).policy.state_dict()
    for key, value in final["learner"]["policy"].items():
        assert torch.equal(saved[key], value), key


def test_the_policy_file_is_the_final_policy_when_max_steps_cuts_the_last_epoch(tmp_path):
    """40 updates = 2 epochs of 17 and 6 of the third: the run ends short of epochs x 17 updates,
    and its ala_controller.pt (for policy transfer) must still be the policy it ended with, not
    the first epoch's (a short run never reaches the 30 s save interval)."""
    train(compose_config(*ALA, "+task.max_steps=40"), str(tmp_path))
    assert int(read_csv(tmp_path / "ala_log.csv")[-1]["update"]) == 40
    final = torch.load(tmp_path / "checkpoint_last.pt", weights_only=True)["controller"]["controller"]
    saved = load_controller(str(tmp_path / "ala_controller.pt")).policy.state_dict()
    assert final["learner"]["num_updates"] >= 8  # the policy learned after the first epoch
    for key, value in final["learner"]["policy"].items():
        assert torch.equal(saved[key], value), key


@pytest.mark.parametrize("replay, credit", [(0, "window"), (6, "window"), (6, "classes")])
def test_ala_resume_equals_an_uninterrupted_run(tmp_path, replay, credit):
    # window 5 does not divide the 17 updates of an epoch: the checkpoint falls mid-window;
    # replay 6: the memory fills and evicts, and its sampling generator must resume too
    # metric_every=1: the metric of every update, so a checkpoint holds a window's partial values
    common = [*ALA, "controller.window=5", "controller.metric_every=1", "task.epochs=3",
              f"controller.replay_capacity={replay}", f"controller.credit={credit}",
              "controller.replay_batch=3", "controller.entropy_bonus=0.01"]
    full = train(compose_config(*common), str(tmp_path / "full"))
    train(compose_config(*common, "stop_after_epoch=1"), str(tmp_path / "split"))
    assert len(torch.load(tmp_path / "split/checkpoint_last.pt", weights_only=True)
               ["controller"]["metric_values"]) == 17 % 5
    resumed = train(compose_config(*common, "resume=true"), str(tmp_path / "split"))
    assert without_clocks(resumed) == without_clocks(full)
    assert without_clocks(read_csv(tmp_path / "split/ala_log.csv")) == without_clocks(read_csv(tmp_path / "full/ala_log.csv"))
    a = torch.load(tmp_path / "full/checkpoint_last.pt", weights_only=True)
    b = torch.load(tmp_path / "split/checkpoint_last.pt", weights_only=True)
    for key in a["student"]:
        assert torch.equal(a["student"][key], b["student"][key]), key
    a, b = a["controller"]["controller"], b["controller"]["controller"]
    for key, value in a["learner"]["policy"].items():
        assert torch.equal(value, b["learner"]["policy"][key]), key
    assert torch.equal(torch.as_tensor(a["learner"]["baseline"]), torch.as_tensor(b["learner"]["baseline"]))
    if credit == "classes":  # per-element rewards, stored and resumed
        assert a["learner"]["baseline"].shape == (90,)
        assert all(r["element_reward"] != "" for r in read_csv(tmp_path / "full/ala_log.csv")[1:])
    assert torch.equal(a["generator"], b["generator"])
    if replay:
        assert len(a["memory"]["transitions"]) == 6 and torch.equal(a["memory"]["generator"], b["memory"]["generator"])


def test_policy_transfer_loads_a_saved_policy(tmp_path):
    source = tmp_path / "policy.pt"
    policy = PairPolicy(pair_feature_size(2), seed=7)
    with torch.no_grad():
        policy.net[-1].bias.copy_(torch.tensor([0.0, 0.0, 20.0]))  # always +beta
    save_controller(str(source), policy)
    cfg = compose_config(*ALA, "task.epochs=1", f"controller.policy_path={source}",
                         "controller.train_policy=false", "controller.clamp=null",
                         "controller.base_beta=1.0")
    train(cfg, str(tmp_path / "run"))
    rows = read_csv(tmp_path / "run/ala_log.csv")
    assert all(int(r["actions_plus"]) == 90 for r in rows)
    phi = torch.load(tmp_path / "run/checkpoint_last.pt", weights_only=True)["student"]["objective.phi.matrix"]
    expected = torch.full((10, 10), len(rows) / 90 ** 0.5).fill_diagonal_(1.0)
    torch.testing.assert_close(phi, expected)


@pytest.mark.parametrize("override,error,match", [
    ("controller.base_beta=0", ControllerError, "beta=0"),
    ("controller.base_beta=-0.5", ControllerError, "beta=-0.5"),
    ("controller.window=0", ControllerError, "window=0"),
    ("controller.reward_metric=accuracy", ControllerError, "unknown reward metric 'accuracy'"),
    ("controller.reward_metric=bleu", ControllerError, "not available for classification"),
    ("controller.gamma=1.5", ControllerError, "gamma=1.5"),
    ("controller.clamp=[1.0,-1.0]", ControllerError, "low <= high"),
    ("loss.parametrisation=diag_lowrank", ConfigError, "parametrisation in"),
    ("controller.metric_every=3", ControllerError, "metric_every=3 does not divide window K=4"),
    ("controller.val_subset=-1", ControllerError, "val_subset=-1"),
    ("controller.multi_network=maybe", ControllerError, "multi_network='maybe'; expected true or false"),
    ("controller.state=noise", ControllerError, r"controller.state='noise'; expected one of \['confusion', 'random'\]"),
    ("controller.replay_capacity=-1", ControllerError, "replay_capacity=-1; expected an integer >= 0"),
    ("controller.entropy_bonus=-0.1", ControllerError, "entropy_bonus=-0.1"),
    ("controller.policy_prior=noise", ControllerError, r"policy_prior='noise'; expected one of \['none', 'confusion'\]"),
    ("controller.policy_prior=confusion controller.policy_path=x.pt", ControllerError, "both set the starting policy"),
    ("controller.reward_average=1.0", ControllerError, r"reward_average=1.0; expected a value in \[0.0, 1.0\)"),
    ("controller.hold=0", ControllerError, "hold=0; expected an integer >= 1"),
    ("controller.hold=3 controller.reward_average=0.5", ControllerError,
     "controller.hold=3 rewards a decision against the metric at the last decision; "
     "controller.reward_average=0.5 expected 0"),
    ("loss.parametrisation=bucketed controller.diagonal=true", ControllerError, "diagonal of a full Phi"),
    ("controller.credit=pairs", ControllerError, r"credit='pairs'; expected one of \['window', 'classes'\]"),
    ("loss.parametrisation=bucketed controller.credit=classes", ControllerError,
     "credit=classes rewards the class pairs of a full Phi"),
    ("controller.credit=classes controller.reward_metric=aucpr", ControllerError,
     "needs a reward metric with a per-class mean"),
])
def test_bad_ala_settings_are_refused_before_anything_is_written(tmp_path, override, error, match):
    # the trainer's config rules (ConfigError) or the controller's own checks (ControllerError)
    with pytest.raises((error, ConfigError), match=match):
        train(compose_config(*ALA, "task.epochs=1", *override.split()), str(tmp_path))
    assert not [p for p in tmp_path.iterdir() if p.name != ".dynloss-train.lock"]  # the run-folder lock


@pytest.mark.parametrize("loss", ["ce", "label_smoothing"])
def test_ala_with_a_loss_without_phi_is_refused(tmp_path, loss):
    with pytest.raises(ConfigError, match=f"controller=ala acts on the Phi of the dynamic loss or of a "
                                          f"metric-learning ALA loss; got loss={loss}"):
        train(compose_config(f"loss={loss}", "controller=ala", "task.epochs=1"), str(tmp_path))
    assert not [p for p in tmp_path.iterdir() if p.name != ".dynloss-train.lock"]  # the run-folder lock


def test_policy_file_for_another_state_size_is_refused(tmp_path):
    source = tmp_path / "policy.pt"
    save_controller(str(source), PairPolicy(pair_feature_size(5)))  # history 5, this run uses history 2
    with pytest.raises(ControllerError, match="feature size 17; this run builds states of feature size 11"):
        train(compose_config(*ALA, "task.epochs=1", f"controller.policy_path={source}"),
              str(tmp_path / "run"))


def test_expected_accuracy_metric_is_the_mean_probability_of_the_label():
    from fairseq_dynloss.trainer.ala import ALATrainerController

    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0], [-3.0, 1.0, 4.0]])
    labels = torch.tensor([0, 2, 1])
    controller = object.__new__(ALATrainerController)  # only the metric's inputs are needed
    controller.metric, controller.val_labels = "expected_accuracy", labels
    naive = 0.0
    for row, y in zip(logits.tolist(), labels.tolist()):
        exps = [math.exp(v) for v in row]
        naive += exps[y] / sum(exps)
    value = controller._metric(None, logits, logits)
    assert value.item() == pytest.approx(100.0 * naive / 3, rel=1e-6)


@pytest.mark.parametrize("metric", ["error", "loss", "expected_accuracy"])
def test_per_class_metric_averages_back_to_the_reward_metric(metric):
    """credit=classes: the per-class means, weighted by the classes' example counts, are the
    window metric of the same validation outputs (one definition of each metric)."""
    from types import SimpleNamespace

    from fairseq_dynloss.controllers import ClassCredit
    from fairseq_dynloss.trainer.ala import ALATrainerController
    from fairseq_dynloss.trainer.objectives import CrossEntropyObjective

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(40, 4, generator=g)
    labels = torch.tensor([0] * 5 + [1] * 15 + [2] * 20)  # class 3: no examples
    controller = object.__new__(ALATrainerController)
    controller.metric, controller.val_labels = metric, labels
    controller.controller = SimpleNamespace(class_credit=ClassCredit(metric, torch.tensor([[0, 1]]), 4))
    per_class = controller._class_metric(logits)
    assert math.isnan(per_class[3])
    counts = torch.bincount(labels, minlength=4)[:3].double()
    student = SimpleNamespace(objective=CrossEntropyObjective())
    expected = controller._metric(student, logits, logits).item()
    assert (per_class[:3] * counts).sum().item() / 40 == pytest.approx(expected, rel=1e-6)


def test_policy_prior_starts_from_the_confusion_rule(tmp_path):
    from fairseq_dynloss.controllers import prior_policy

    train(compose_config(*ALA, "task.epochs=1", "controller.policy_prior=confusion",
                         "controller.train_policy=false"), str(tmp_path))
    saved = torch.load(tmp_path / "checkpoint_last.pt", weights_only=True)["controller"]["controller"]
    expected = prior_policy(pair_feature_size(2), hidden=32, prior="confusion", seed=0).state_dict()
    for key, value in saved["learner"]["policy"].items():
        assert torch.equal(value, expected[key]), key
    rows = read_csv(tmp_path / "ala_log.csv")
    assert all(float(r["entropy"]) < 0.2 for r in rows)  # a near-deterministic rule, not uniform
