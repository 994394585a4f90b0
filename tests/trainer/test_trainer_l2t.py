"""teacher=l2t in dynloss-train on the offline digits task: phase (a) equals a hand-written unroll
with its hypergradient, phase (b) sets Phi = teacher(s_t) from the live state every update, files,
reuse / continuation / resume, teacher.path, and bad settings."""

import copy
import csv
import math
import shutil

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call
from trainer_helpers import compose_config, without_clocks

from fairseq_dynloss.losses import PhiError, build_phi, dynamic_loss
from fairseq_dynloss.teacher import (
    STATE_FEATURES, GatedTeacher, build_teacher, load_teacher, save_teacher,
)
from fairseq_dynloss.trainer import l2t, train
from fairseq_dynloss.trainer.objectives import DynamicObjective
from fairseq_dynloss.trainer.registry import ConfigError, build_net, build_objective, build_splits

# Tiny and quick: a 16-unit MLP, 17 updates per epoch, 3 teacher steps of T = 3 unrolled steps.
# optim=sgd (lr 0.1, momentum 0.9, weight decay 5e-4, x0.1 at epoch 1 of 2): the unroll's three
# steps stand for epochs 0, 0, 1 -> lr ratios 1, 1, 0.1 and a dev evaluation before step 2.
L2T = ["loss=dynamic", "loss.form=paper", "teacher=l2t", "teacher.mode=episodic", "teacher.dev_objective=expected_accuracy",
       "teacher.steps=3", "teacher.unroll=3", "teacher.horizon=3", "teacher.dev_batches=1",
       "teacher.lr=0.05", "model.hidden=[16]", "task.epochs=2"]
UPDATES_PER_EPOCH = 17
C = 10


def read_csv(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One teacher=l2t run; the Phi each student update used and the NLL of its batch, recorded
    inside DynamicObjective.forward."""
    out = tmp_path_factory.mktemp("l2t")
    phis, nlls = [], []
    forward = DynamicObjective.forward

    def recording_forward(self, outputs, target):
        phis.append(self.phi.materialize().detach().clone())
        nlls.append(F.cross_entropy(outputs.detach(), target).item())
        return forward(self, outputs, target)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(DynamicObjective, "forward", recording_forward)
        history = train(compose_config(*L2T), str(out))
    return {"out": out, "history": history, "phis": phis, "nlls": nlls}


def untrained_teacher():
    return build_teacher("gated", "full", C, num_gates=4, hidden=32, seed=1)


def phi_of(teacher, features):
    phi = build_phi("full", C)
    with torch.no_grad():
        phi.load_tensors(teacher(features))
    return phi.materialize()


def test_phase_a_writes_its_files_and_moves_the_teacher(run):
    out = run["out"]
    rows = read_csv(out / "teacher_log.csv")
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    for r in rows:
        assert 0.0 < float(r["dev_objective"]) < 1.0  # an expected accuracy
        assert float(r["grad_norm"]) > 0 and r["skipped"] == "0"
    payload = torch.load(out / "teacher.pt", weights_only=True)
    assert payload["config"]["done"] is True and payload["config"]["teacher_steps"] == 3
    assert payload["config"]["horizon"] == 3  # teacher.horizon=3: the run compressed into the unroll
    trained = load_teacher(str(out / "teacher.pt"), "full", C)
    before = untrained_teacher().state_dict()
    moved = max((trained.state_dict()[k] - before[k]).abs().max().item() for k in before)
    assert moved > 1e-3, "three Adam steps of lr 0.05 must move theta"


@pytest.mark.parametrize("penalty", [0.0, 0.5])
def test_phase_a_equals_a_hand_written_unroll_and_its_hypergradient(penalty):
    """One teacher step by hand: torch-style SGD (momentum 0.9, weight decay 5e-4, lr 0.1, 0.1,
    0.01) on the module through functional_call, s_t computed from its own trajectory, Phi_t from
    a teacher that reacts strongly to s_t, and d (expected dev accuracy - penalty x mean_t
    mean((Phi_t - I)^2)) / d theta by autograd through the whole unroll."""
    cfg = compose_config(*L2T, f"teacher.phi_penalty={penalty}", "teacher.clip=0", "loss.scale=1.0")
    splits = build_splits(cfg.task, cfg.data_dir)
    teacher = GatedTeacher("full", C, init_std=1.0, seed=3)
    learner = l2t.build_learner(cfg, copy.deepcopy(teacher))
    objective = build_objective(cfg.loss, C, 16)
    result, state = l2t.run_episode(cfg, splits, objective, learner, 0, torch.device("cpu"))

    seed, batches, dev = l2t.episode_data(cfg, splits, 0)
    torch.manual_seed(seed)
    net = build_net(cfg.model, splits.input_shape, C)
    theta = dict(teacher.named_parameters())
    phi = build_phi("full", C)
    params = {k: v.detach().clone().requires_grad_() for k, v in net.named_parameters()}
    buffers, nlls, dev_loss, dev_acc, distance = {}, [], None, None, 0.0
    ratios, log_c = [1.0, 1.0, 0.1], math.log(C)
    for t, images, target in batches:
        if t == 2:  # compressed epoch end: validate omega_2 (eval mode; no gradient)
            with torch.no_grad():
                x, y = dev[0]
                logits = functional_call(net.eval(), params, (x,))
                dev_loss, dev_acc = F.cross_entropy(logits, y).item(), (logits.argmax(1) == y).float().mean().item()
                net.train()
        ema = None
        for value in nlls:
            ema = value if ema is None else 0.9 * ema + 0.1 * value
        train_feature = 1.0 if ema is None else ema / log_c
        features = torch.tensor([t / 3, train_feature, train_feature if dev_loss is None else dev_loss / log_c,
                                 0.0 if dev_acc is None else dev_acc, ratios[t], 1.0])
        torch.testing.assert_close(state.cache[t], features, rtol=1e-5, atol=1e-6)
        phi_t = functional_call(teacher, theta, (features,))
        distance = distance + (phi_t["matrix"] - torch.eye(C)).pow(2).mean() / 3
        lprobs = F.log_softmax(functional_call(net, params, (images,)), dim=1)
        nlls.append(F.nll_loss(lprobs, target).item())
        loss = dynamic_loss(lprobs, target, phi, phi_tensors=phi_t).loss / target.numel()
        grads = torch.autograd.grad(loss, list(params.values()), create_graph=True)
        for (k, p), g in zip(list(params.items()), grads):
            g = g + 5e-4 * p
            buffers[k] = g if t == 0 else 0.9 * buffers[k] + g
            params[k] = p - 0.1 * ratios[t] * buffers[k]
    x, y = dev[0]
    dev_objective = torch.softmax(functional_call(net.eval(), params, (x,)), 1).gather(1, y[:, None]).mean()
    grads = torch.autograd.grad(dev_objective - penalty * distance, list(theta.values()))
    norm = torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))
    assert result.dev_objective == pytest.approx(dev_objective.item(), rel=1e-5)
    assert result.penalty == pytest.approx(penalty * distance.item(), rel=1e-5)
    assert result.grad_norm == pytest.approx(norm.item(), rel=1e-4)
    # Adam's first step moves each parameter by lr * g / (|g| + eps) in the ascent direction
    for (name, p), g in zip(learner.teacher.named_parameters(), grads):
        torch.testing.assert_close(p.detach() - theta[name].detach(), 0.05 * g / (g.abs() + 1e-8),
                                   rtol=1e-4, atol=1e-6)


def test_phase_b_phi_is_the_teacher_of_the_live_state_at_every_update(run):
    out, phis, nlls = run["out"], run["phis"], run["nlls"]
    states = read_csv(out / "teacher_states.csv")
    total = 2 * UPDATES_PER_EPOCH
    assert [int(r["update"]) for r in states] == list(range(total)) and len(phis) == total
    assert max((phis[k] - phis[0]).abs().max().item() for k in range(total)) > 1e-4, "Phi must change"
    teacher = load_teacher(str(out / "teacher.pt"), "full", C)
    epoch1 = read_csv(out / "metrics.csv")[0]
    log_c = math.log(C)
    ema = None
    for k, row in enumerate(states):
        # the state by hand: progress, EMA of the NLL of the updates before k, last epoch's val stats
        train_feature = 1.0 if ema is None else ema / log_c
        after_epoch1 = k >= UPDATES_PER_EPOCH
        expected = [k / total, train_feature,
                    float(epoch1["val_loss"]) / log_c if after_epoch1 else train_feature,
                    1 - float(epoch1["val_error"]) / 100 if after_epoch1 else 0.0,
                    0.1 if after_epoch1 else 1.0, 1.0]
        features = torch.tensor([float(row[name]) for name in STATE_FEATURES])
        torch.testing.assert_close(features, torch.tensor(expected), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(phis[k], phi_of(teacher, features), rtol=0, atol=0)
        ema = nlls[k] if ema is None else 0.9 * ema + 0.1 * nlls[k]
    last = run["history"][-1]
    assert last["phi_diag_mean"] == pytest.approx(phi_of(teacher, features).diagonal().mean().item(), rel=1e-6)


def test_resume_equals_the_uninterrupted_run_and_reuses_the_teacher(run, tmp_path, monkeypatch):
    train(compose_config(*L2T, "stop_after_epoch=1"), str(tmp_path))

    def no_teacher_steps(*args, **kwargs):
        raise AssertionError("a finished teacher must be reused, not trained again")

    monkeypatch.setattr(l2t, "run_episode", no_teacher_steps)
    resumed = train(compose_config(*L2T, "resume=true"), str(tmp_path))
    assert without_clocks(resumed) == without_clocks(run["history"])
    assert read_csv(tmp_path / "teacher_states.csv") == read_csv(run["out"] / "teacher_states.csv")
    assert without_clocks(read_csv(tmp_path / "teacher_log.csv")) == without_clocks(read_csv(run["out"] / "teacher_log.csv"))


def test_teacher_path_skips_phase_a(run, tmp_path, monkeypatch):
    monkeypatch.setattr(l2t, "run_episode", lambda *a, **k: pytest.fail("phase (a) must be skipped"))
    train(compose_config(*L2T, f"teacher.path={run['out'] / 'teacher.pt'}", "stop_after_epoch=1"), str(tmp_path))
    for name in ("teacher.pt", "teacher_log.csv", "teacher_checkpoint.pt"):
        assert not (tmp_path / name).exists(), name
    # the same teacher, student and data: the first epoch's states are those of the run that trained it
    assert read_csv(tmp_path / "teacher_states.csv") == read_csv(run["out"] / "teacher_states.csv")[:UPDATES_PER_EPOCH]


def test_more_teacher_steps_continue_from_the_checkpoint(run, tmp_path):
    def phase_a(*overrides):
        cfg = compose_config(*L2T, *overrides)
        splits = build_splits(cfg.task, cfg.data_dir)
        objective = build_objective(cfg.loss, C, 16)
        return l2t.train_teacher(cfg, splits, objective, torch.device("cpu"), str(tmp_path))

    phase_a("teacher.steps=2")
    assert len(read_csv(tmp_path / "teacher_log.csv")) == 2
    assert torch.load(tmp_path / "teacher.pt", weights_only=True)["config"]["teacher_steps"] == 2
    teacher = phase_a("teacher.steps=3")
    assert without_clocks(read_csv(tmp_path / "teacher_log.csv")) == without_clocks(read_csv(run["out"] / "teacher_log.csv"))
    reference = load_teacher(str(run["out"] / "teacher.pt"), "full", C).state_dict()
    for key, value in teacher.state_dict().items():
        assert torch.equal(value, reference[key]), key
    with pytest.raises(ConfigError, match=r"teacher\.lr: 0\.05 -> 0\.01.*overwrite=true"):
        phase_a("teacher.lr=0.01")
    with pytest.raises(ConfigError, match="already holds 3 teacher steps; teacher.steps=1"):
        phase_a("teacher.steps=1")


def test_bad_teacher_files_are_refused(tmp_path):
    missing = tmp_path / "missing.pt"
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a teacher")
    five = tmp_path / "five.pt"
    save_teacher(build_teacher("gated", "full", 5), str(five))
    lowrank = tmp_path / "lowrank.pt"
    save_teacher(build_teacher("gated", "diag_lowrank", C, rank=4), str(lowrank))
    cases = [(missing, f"teacher file '{missing}' does not exist"),
             (corrupt, "cannot read teacher file .*weights_only=True"),
             (five, "built for num_classes=5; this student needs 10"),
             (lowrank, "built for parametrisation='diag_lowrank'; this student needs 'full'")]
    for path, match in cases:
        out = tmp_path / f"run-{path.stem}"
        with pytest.raises(PhiError, match=match):
            train(compose_config(*L2T, f"teacher.path={path}"), str(out))
        assert not (out / "checkpoint_last.pt").exists() and not (out / "teacher_states.csv").exists()


@pytest.mark.parametrize("override, match", [
    ("loss=ce", "teacher=l2t sets the Phi of the dynamic loss; got loss=ce"),
    ("teacher.unroll=0", r"teacher.unroll=0; expected an integer >= 1"),
    ("teacher.steps=-1", r"teacher.steps=-1; expected an integer >= 0"),
    ("teacher.dev_batches=0", r"teacher.dev_batches=0; expected an integer >= 1"),
    ("teacher.kind=mlp", r"teacher.kind='mlp'; expected one of \['bilinear', 'gated', 'lr_scale'\]"),
        ("teacher.kind=lr_scale", "teacher.kind=lr_scale scales the live student's learning rate"),
        ("teacher.mode=greedy", "teacher.mode='greedy'; expected episodic or online"),
        ("teacher.online_every=0", "teacher.online_every=0; expected an integer >= 1"),
        ("teacher.dev_objective=bleu", "teacher.dev_objective='bleu'; expected expected_accuracy or log_likelihood"),
        ("teacher.mode=online teacher.inner_lr=0.1", "teacher.mode=online unrolls the student's own"),
    ("teacher.inner_optimizer=rmsprop", "teacher.inner_optimizer='rmsprop'"),
    ("teacher.lr=0", r"teacher.lr=0; expected .*> 0"),
    ("teacher.phi_penalty=-1", r"teacher.phi_penalty=-1; expected .*>= 0"),
    ("controller=ala", "teacher=l2t and controller=ala would both set Phi"),
])
def test_bad_l2t_settings_are_refused_before_anything_is_written(tmp_path, override, match):
    # another loss group has no loss.form: leave L2T's loss settings out then
    base = [o for o in L2T if not (override.startswith("loss=") and o.startswith("loss."))]
    with pytest.raises(ConfigError, match=match):
        train(compose_config(*base, *override.split()), str(tmp_path / "run"))
    # nothing written but the run folder's lock (trainer/run_dir.py)
    assert not (tmp_path / "run").exists() or {p.name for p in (tmp_path / "run").iterdir()} <= {".dynloss-train.lock"}


def test_a_teacher_trained_with_other_settings_is_not_reused_silently(run, tmp_path):
    shutil.copy(run["out"] / "teacher.pt", tmp_path / "teacher.pt")
    with pytest.raises(ConfigError, match=r"trained with other settings: loss\.nll_weight: 0\.0 -> 0\.5"):
        train(compose_config(*L2T, "loss.nll_weight=0.5"), str(tmp_path))


# -- teacher.mode=online -------------------------------------------------------------------------
ONLINE = ["loss=dynamic", "loss.form=prob", "teacher=l2t", "teacher.mode=online", "teacher.online_every=1", "teacher.unroll=2",
          "teacher.dev_batches=1", "teacher.lr=0.05", "model.hidden=[16]", "task.epochs=2", "optim=adam",
          "optim.lr=0.01"]


def test_online_lookahead_reads_the_deployed_state_and_the_live_optimiser(tmp_path, monkeypatch):
    """Every update: the look-ahead's first s_t is the s_t that then sets the real update's Phi
    (teacher_states.csv), its unrolled update counters continue the live one, and its functional
    optimiser continues the live Adam (step count = updates so far)."""
    from fairseq_dynloss.trainer import l2t_online

    seen = []
    step = l2t_online.OnlineTeacher.teacher_step

    def recording_step(self, lr):
        result, state = step(self, lr)
        seen.append((self.step, state.cache[0].clone(), [s.num_updates for s in state.states.values()],
                     result.skipped))
        return result, state

    twins = []
    twin = l2t_online.functional_twin

    def recording_twin(optimizer, names, lr=None):
        out = twin(optimizer, names, lr)
        twins.append(out[0].first_step)
        return out

    monkeypatch.setattr(l2t_online.OnlineTeacher, "teacher_step", recording_step)
    monkeypatch.setattr(l2t_online, "functional_twin", recording_twin)
    train(compose_config(*ONLINE), str(tmp_path))
    states = read_csv(tmp_path / "teacher_states.csv")
    assert len(seen) == len(states) == 2 * UPDATES_PER_EPOCH
    for (update, s0, counters, skipped), row in zip(seen, states):
        assert int(row["update"]) == update and not skipped
        torch.testing.assert_close(s0, torch.tensor([float(row[name]) for name in STATE_FEATURES]))
        assert counters == list(range(update, update + len(counters)))
    assert twins == list(range(2 * UPDATES_PER_EPOCH))  # Adam's step count carried, never reset
    log = read_csv(tmp_path / "teacher_log.csv")
    assert [int(r["update"]) for r in log] == list(range(2 * UPDATES_PER_EPOCH))
    payload = torch.load(tmp_path / "teacher.pt", weights_only=True)
    trained = load_teacher(str(tmp_path / "teacher.pt"), "full", C)
    assert trained.config["form"] == "prob" and payload["config"]["teacher_steps"] == 2 * UPDATES_PER_EPOCH


def test_online_lr_scale_control_scales_the_live_rate(tmp_path):
    history = train(compose_config(*ONLINE, "teacher.kind=lr_scale", "teacher.unroll=1"), str(tmp_path))
    multiplier = history[-1]["lr_multiplier"]
    assert multiplier != 1.0
    # the logged rate is the one the last update used: the (constant) schedule's 0.01 x multiplier
    assert history[-1]["lr"] == pytest.approx(0.01 * multiplier, rel=1e-6)
    states = read_csv(tmp_path / "teacher_states.csv")
    assert all(float(r["lr_ratio"]) == 1.0 for r in states)  # the feature is the schedule's ratio


@pytest.mark.parametrize("unroll,every", [(1, 1), (2, 1), (1, 4)])
def test_online_resume_equals_the_uninterrupted_run(tmp_path, unroll, every):
    # unroll 2: the look-ahead also unrolls the batch before the update, kept in the checkpoint;
    # every 4: the teacher's steps (updates 0, 4, ...) straddle the 17-update epoch boundary
    online = [*ONLINE, f"teacher.unroll={unroll}", f"teacher.online_every={every}"]
    full = train(compose_config(*online), str(tmp_path / "full"))
    train(compose_config(*online, "stop_after_epoch=1"), str(tmp_path / "split"))
    resumed = train(compose_config(*online, "resume=true"), str(tmp_path / "split"))
    assert without_clocks(resumed) == without_clocks(full)
    assert read_csv(tmp_path / "split" / "teacher_states.csv") == read_csv(tmp_path / "full" / "teacher_states.csv")
    steps = [int(r["update"]) for r in read_csv(tmp_path / "split" / "teacher_log.csv")]
    assert steps == list(range(0, 2 * UPDATES_PER_EPOCH, every))


def test_online_phi_penalty_keeps_phi_near_the_identity(tmp_path):
    """teacher.phi_penalty acts in online mode too: a strong penalty keeps Phi_t's diagonal
    closer to 1 than the same run without it (teacher_states.csv)."""
    distance = {}
    for penalty in (0.0, 10.0):
        out = tmp_path / f"penalty{penalty:g}"
        train(compose_config(*ONLINE, "teacher.unroll=1", f"teacher.phi_penalty={penalty}"), str(out))
        states = read_csv(out / "teacher_states.csv")
        distance[penalty] = sum(1.0 - float(r["phi_diag_mean"]) for r in states[-10:]) / 10
    assert distance[0.0] > 0.0
    assert distance[10.0] < 0.5 * distance[0.0]
