"""teacher.episode_starts=ce_trajectory: the CE run's states are the loop's own, an episode started
at progress p shows the teacher progress p and continues the CE run's optimiser, phase (a)
resumes exactly, and bad settings are refused before anything is written."""

import copy
import math

import pytest
import torch
from trainer_helpers import compose_config, without_clocks

from fairseq_dynloss.hypergrad import SGD, Adam
from fairseq_dynloss.teacher import STATE_FEATURES
from fairseq_dynloss.trainer import l2t, l2t_trajectory, train
from fairseq_dynloss.trainer.registry import ConfigError, build_objective, build_splits

# digits, a 16-unit MLP, 17 updates per epoch, 2 epochs (34 updates); optim=sgd (lr 0.1,
# momentum 0.9, weight decay 5e-4, x0.1 from epoch 1). Points 0 and 0.5: updates 0 and 17, the
# second the first update of epoch 1 (after one validation and one scheduler step).
C = 10
TRAJ = ["loss=dynamic", "loss.form=paper", "teacher=l2t", "teacher.mode=episodic", "teacher.episode_starts=ce_trajectory",
        "teacher.trajectory_points=[0,0.5]", "teacher.steps=3", "teacher.unroll=3", "teacher.dev_batches=1",
        "teacher.lr=0.05", "model.hidden=[16]", "task.epochs=2"]
CE = ["loss=ce", "model.hidden=[16]", "task.epochs=2"]


def _setup(*overrides):
    cfg = compose_config(*TRAJ, *overrides)
    splits = build_splits(cfg.task, cfg.data_dir)
    return cfg, splits, build_objective(cfg.loss, C, 16)


@pytest.fixture(scope="module")
def loop_after_one_epoch(tmp_path_factory):
    """The loop's own CE run stopped after epoch 0 (update 17): its checkpoint and history."""
    out = tmp_path_factory.mktemp("ce")
    history = train(compose_config(*CE, "stop_after_epoch=1"), str(out))
    return torch.load(out / "checkpoint_last.pt", weights_only=False), history


def test_the_trajectory_is_the_loops_own_ce_run(loop_after_one_epoch):
    checkpoint, history = loop_after_one_epoch
    cfg, splits, _ = _setup()
    points = l2t_trajectory.train_ce_trajectory(cfg, splits, torch.device("cpu"), l2t.total_updates(cfg, splits))
    assert [(p["progress"], p["update"]) for p in points] == [(0.0, 0), (0.5, 17)]
    loop_net = {k[len("net."):]: v for k, v in checkpoint["student"].items() if k.startswith("net.")}
    assert points[1]["net"].keys() == loop_net.keys()
    for k, v in loop_net.items():
        assert torch.equal(points[1]["net"][k], v), k
    saved, loop_opt = points[1]["optimizer"], checkpoint["optimizer"]
    assert saved["param_groups"][0]["lr"] == pytest.approx(loop_opt["param_groups"][0]["lr"]) == pytest.approx(0.01)
    for i, state in loop_opt["state"].items():
        assert torch.equal(saved["state"][i]["momentum_buffer"], state["momentum_buffer"])
    tracker = points[1]["tracker"]
    assert tracker["num_updates"] == 17
    assert tracker["dev_loss"] == pytest.approx(history[0]["val_loss"], rel=1e-6)
    assert tracker["dev_metric"] == pytest.approx(1 - history[0]["val_error"] / 100, abs=1e-7)  # error in float32
    assert points[0]["tracker"] == {"num_updates": 0, "train_loss": None, "dev_loss": None, "dev_metric": None}
    assert points[0]["optimizer"]["state"] == {}


def test_an_episode_at_progress_p_starts_from_the_ce_state_and_its_optimiser():
    cfg, splits, objective = _setup()
    points = l2t_trajectory.train_ce_trajectory(cfg, splits, torch.device("cpu"), l2t.total_updates(cfg, splits))
    learner = l2t.build_learner(cfg, l2t.new_teacher(cfg, objective.phi))
    seen = {}
    real_step = learner.step

    def spy(student_loss, dev_objective, params, batches, features, **kwargs):
        seen.update(params={k: v.clone() for k, v in params.items()}, **kwargs)
        return real_step(student_loss, dev_objective, params, batches, features, **kwargs)

    learner.step = spy
    start = l2t_trajectory.episode_start(points, 1)
    assert start is points[1]
    result, state = l2t.run_episode(cfg, splits, objective, learner, 1, torch.device("cpu"), start)
    assert not result.skipped
    s0 = dict(zip(STATE_FEATURES, state.cache[0].tolist()))
    tracker = start["tracker"]
    log_c = math.log(C)
    assert s0["progress"] == 0.5
    assert s0["train_loss"] == pytest.approx(tracker["train_loss"] / log_c, rel=1e-6)
    assert s0["dev_loss"] == pytest.approx(tracker["dev_loss"] / log_c, rel=1e-6)
    assert s0["dev_metric"] == pytest.approx(tracker["dev_metric"], rel=1e-6)
    assert s0["lr_ratio"] == pytest.approx(0.1)
    assert [state.states[t].num_updates for t in range(3)] == [17, 18, 19]
    for name, value in seen["params"].items():
        assert torch.equal(value, start["net"][name]), name
    # the CE run's SGD continued: its hyper-parameters, its momentum at update 17, its schedule
    optimizer = seen["optimizer"]
    assert isinstance(optimizer, SGD)
    assert (optimizer.momentum, optimizer.nesterov, optimizer.weight_decay) == (0.9, False, 5e-4)
    assert optimizer.lr == pytest.approx([0.01, 0.01, 0.01])
    names = list(start["net"])  # state-dict order = parameter order of the optimiser (no buffers)
    for i, name in enumerate(names):
        assert torch.equal(seen["opt_state"]["momentum"][name], start["optimizer"]["state"][i]["momentum_buffer"])


def test_episodes_cycle_through_the_points_and_phase_a_resumes_exactly(tmp_path, monkeypatch):
    def phase_a(out, *overrides):
        cfg, splits, objective = _setup(*overrides)
        out.mkdir(exist_ok=True)
        return l2t.train_teacher(cfg, splits, objective, torch.device("cpu"), str(out))

    whole = phase_a(tmp_path / "whole")
    rows = l2t.read_complete_rows(str(tmp_path / "whole" / l2t.LOG_FILE))
    assert [int(r["start_update"]) for r in rows] == [0, 17, 0]
    phase_a(tmp_path / "split", "teacher.steps=2")
    real = l2t_trajectory.train_ce_trajectory
    monkeypatch.setattr(l2t_trajectory, "train_ce_trajectory",
                        lambda *a, **k: pytest.fail("a continued phase (a) must read teacher_trajectory.pt"))
    continued = phase_a(tmp_path / "split", "teacher.steps=3")
    for key, value in whole.state_dict().items():
        assert torch.equal(value, continued.state_dict()[key]), key
    assert without_clocks(l2t.read_complete_rows(str(tmp_path / "split" / l2t.LOG_FILE))) == without_clocks(rows)
    # other points: the file is not reused
    monkeypatch.setattr(l2t_trajectory, "train_ce_trajectory", real)
    phase_a(tmp_path / "split", "teacher.trajectory_points=[0.5]", "overwrite=true")
    saved = torch.load(tmp_path / "split" / l2t_trajectory.TRAJECTORY_FILE, weights_only=True)
    assert [p["update"] for p in saved["points"]] == [17]


def test_fresh_starts_keep_the_settings_of_teachers_trained_before_the_option():
    fresh = l2t.settings_of(compose_config(*TRAJ, "teacher.episode_starts=fresh"))["teacher"]
    assert "episode_starts" not in fresh and "trajectory_points" not in fresh
    traj = l2t.settings_of(compose_config(*TRAJ))["teacher"]
    assert traj["episode_starts"] == "ce_trajectory" and traj["trajectory_points"] == [0, 0.5]


@pytest.mark.parametrize("override, match", [
    ("teacher.episode_starts=random", r"teacher.episode_starts='random'; expected one of \['fresh', 'ce_trajectory'\]"),
    ("teacher.trajectory_points=[]", r"teacher.trajectory_points=\[\]; expected a non-empty list"),
    ("teacher.trajectory_points=[0,1]", r"expected a non-empty list of progress points in \[0, 1\)"),
    ("teacher.trajectory_points=[-0.1]", r"teacher.trajectory_points=\[-0.1\]"),
    ("teacher.trajectory_points=0.5", r"teacher.trajectory_points=0.5"),
    ("teacher.trajectory_points=[0.5,0.5]", r"repeats a point"),
    ("teacher.horizon=3", r"teacher.horizon=3 must be null"),
    ("teacher.inner_optimizer=adam", "teacher.inner_optimizer and teacher.inner_lr must be null"),
    ("teacher.mode=online", r"needs teacher.mode=episodic \(got online\)"),
])
def test_bad_trajectory_settings_are_refused_before_anything_is_written(tmp_path, override, match):
    with pytest.raises(ConfigError, match=match):
        train(compose_config(*TRAJ, override), str(tmp_path / "run"))
    assert not (tmp_path / "run").exists() or {p.name for p in (tmp_path / "run").iterdir()} <= {".dynloss-train.lock"}


def test_the_optimiser_is_built_as_the_loops(loop_after_one_epoch):
    checkpoint, _ = loop_after_one_epoch
    cfg, _, _ = _setup()
    params = [torch.nn.Parameter(torch.zeros(2))]
    optimizer = l2t_trajectory.build_optimizer(cfg.optim, params)
    group = copy.deepcopy(checkpoint["optimizer"]["param_groups"][0])
    built = optimizer.state_dict()["param_groups"][0]
    for key in ("momentum", "weight_decay", "nesterov", "dampening"):
        assert built[key] == group[key], key


def test_with_adam_the_unroll_continues_the_ce_runs_moments_and_step_count():
    """optim=adam (the MNIST-1D recipe): the twin is Adam at step 17 with the CE run's moments."""
    cfg, splits, objective = _setup("optim=adam", "optim.lr=0.01", "optim.schedule=multistep")
    points = l2t_trajectory.train_ce_trajectory(cfg, splits, torch.device("cpu"), l2t.total_updates(cfg, splits))
    learner = l2t.build_learner(cfg, l2t.new_teacher(cfg, objective.phi))
    seen = {}
    real_step = learner.step

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real_step(*args, **kwargs)

    learner.step = spy
    l2t.run_episode(cfg, splits, objective, learner, 1, torch.device("cpu"), points[1])
    optimizer, saved = seen["optimizer"], points[1]["optimizer"]
    assert isinstance(optimizer, Adam) and optimizer.first_step == 17
    assert optimizer.betas == tuple(saved["param_groups"][0]["betas"])
    assert optimizer.lr == pytest.approx([0.001] * 3)  # 0.01 x 0.1 from epoch 1
    for i, name in enumerate(points[1]["net"]):
        assert int(saved["state"][i]["step"]) == 17
        for buffer in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(seen["opt_state"][buffer][name], saved["state"][i][buffer]), (buffer, name)
