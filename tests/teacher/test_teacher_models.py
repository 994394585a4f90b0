"""Teachers: state features, the gated and bilinear forms, gradients into theta, teacher files."""

import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fairseq_dynloss.losses import BucketedPhi, PhiError, build_phi, dynamic_loss
from fairseq_dynloss.teacher import (
    STATE_FEATURES, BilinearTeacher, ExponentialAverage, GatedTeacher, StudentState, build_teacher,
    load_teacher, save_teacher, untrained_teacher,
)

C = 6
pytestmark = pytest.mark.usefixtures("float64_default")


def materialise(parametrisation, tensors, bucket_of=None):
    phi = (BucketedPhi(C, bucket_of) if parametrisation == "bucketed"
           else build_phi(parametrisation, C, rank=2)).double()
    phi.load_tensors({k: v.detach() for k, v in tensors.items()})
    return phi.materialize()


def test_state_features_by_hand():
    state = StudentState(num_updates=50, horizon=200, train_loss=math.log(C) / 2, dev_loss=None,
                         dev_metric=0.4, lr=0.5e-3, peak_lr=1e-3)
    expected = [0.25, 0.5, 0.5, 0.4, 0.5, 1.0]
    torch.testing.assert_close(state.features(C), torch.tensor(expected, dtype=torch.float32))
    assert len(STATE_FEATURES) == len(expected)
    # Unknown losses read as a uniform prediction; progress is clipped at 1.
    fresh = StudentState(num_updates=500, horizon=200)
    torch.testing.assert_close(fresh.features(C), torch.tensor([1.0, 1.0, 1.0, 0.0, 1.0, 1.0], dtype=torch.float32))


@pytest.mark.parametrize("kwargs, message", [
    (dict(horizon=0), "horizon=0"),
    (dict(peak_lr=0.0), "peak_lr=0.0"),
    (dict(train_loss=float("nan")), "non-finite"),
])
def test_state_feature_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        StudentState(**{"num_updates": 1, "horizon": 10, **kwargs}).features(C)


def test_exponential_average():
    ema = ExponentialAverage(decay=0.5)
    assert ema.update(4.0) == 4.0
    assert ema.update(2.0) == 3.0
    assert ema.update(3.0) == 3.0
    with pytest.raises(ValueError, match="decay=1.0"):
        ExponentialAverage(1.0)


@pytest.mark.parametrize("parametrisation", ["full", "diag_lowrank", "bucketed"])
def test_gated_teacher_formula_and_identity_start(parametrisation):
    teacher = GatedTeacher(parametrisation, C, rank=2, num_buckets=3, num_gates=3).double()
    features = StudentState(10, 100, train_loss=1.0).features(C).double()
    out = teacher(features)
    h = teacher.gates(features)
    for name, value in out.items():
        expected = teacher.base[name] + sum(h[k] * teacher.components[name][k] for k in range(3))
        torch.testing.assert_close(value, expected)
    bucket_of = torch.tensor([0, 1, 2, 0, 1, 2])
    # Components start at std 0.01 around the identity.
    assert (materialise(parametrisation, out, bucket_of) - torch.eye(C)).abs().max() < 0.1
    silent = GatedTeacher(parametrisation, C, rank=2, num_buckets=3, init_std=0.0).double()
    torch.testing.assert_close(materialise(parametrisation, silent(features), bucket_of), torch.eye(C))


def test_bilinear_teacher_is_the_same_matrix_in_every_parametrisation():
    features = StudentState(10, 100, train_loss=1.0).features(C).double()
    full = BilinearTeacher("full", C, dim=2, seed=3).double()
    low = BilinearTeacher("diag_lowrank", C, rank=2, dim=2, seed=3).double()
    dense = materialise("full", full(features))
    torch.testing.assert_close(materialise("diag_lowrank", low(features)), dense)
    e, m = full.embeddings, torch.tensordot(full.gates(features), full.maps, dims=1)
    torch.testing.assert_close(dense, torch.eye(C) + e @ m @ e.t())
    # Bucketed = full with every class embedded as its bucket.
    bucket_of = torch.tensor([0, 1, 2, 0, 1, 2])
    buck = BilinearTeacher("bucketed", C, num_buckets=3, dim=2, seed=3).double()
    with torch.no_grad():
        full.embeddings.copy_(buck.embeddings[bucket_of])
        full.maps.copy_(buck.maps)
        full.gates.load_state_dict(buck.gates.state_dict())
    torch.testing.assert_close(materialise("bucketed", buck(features), bucket_of),
                               materialise("full", full(features)))


@pytest.mark.parametrize("kind", ["gated", "bilinear"])
@pytest.mark.parametrize("parametrisation", ["full", "diag_lowrank", "bucketed"])
def test_gradient_flows_from_student_loss_into_teacher(kind, parametrisation):
    """d loss / d theta through dynamic_loss(phi_tensors=teacher(s)) matches finite differences."""
    torch.manual_seed(0)
    teacher = build_teacher(kind, parametrisation, C, rank=2, num_buckets=3, num_gates=2, hidden=4).double()
    phi = (BucketedPhi(C, torch.tensor([0, 1, 2, 0, 1, 2])) if parametrisation == "bucketed"
           else build_phi(parametrisation, C, rank=2)).double()
    features = StudentState(10, 100, train_loss=1.0, dev_metric=0.3).features(C).double()
    lprobs = torch.log_softmax(torch.randn(5, C), -1)
    target = torch.tensor([0, 1, 2, 3, 5])
    names = [n for n, _ in teacher.named_parameters()]

    def loss_of(*theta):
        out = torch.func.functional_call(teacher, dict(zip(names, theta)), (features,))
        return dynamic_loss(lprobs, target, phi, scale=0.5, phi_tensors=out).loss

    theta = tuple(p.detach().clone().requires_grad_(True) for p in teacher.parameters())
    assert torch.autograd.gradcheck(loss_of, theta)


def test_phi_tensors_must_match_the_phi():
    phi = build_phi("diag_lowrank", C, rank=2)
    lprobs = torch.log_softmax(torch.randn(2, C), -1)
    with pytest.raises(PhiError, match="must have keys"):
        dynamic_loss(lprobs, torch.tensor([0, 1]), phi, phi_tensors={"matrix": torch.eye(C)})
    with pytest.raises(PhiError, match=r"'U' has shape \(6, 3\); expected \(6, 2\)"):
        dynamic_loss(lprobs, torch.tensor([0, 1]), phi,
                     phi_tensors={"diag": torch.ones(C), "U": torch.zeros(C, 3), "V": torch.zeros(C, 2)})


@pytest.mark.parametrize("kind", ["gated", "bilinear"])
def test_teacher_file_roundtrip(tmp_path, kind):
    teacher = build_teacher(kind, "diag_lowrank", C, rank=2, seed=5)
    save_teacher(teacher, str(tmp_path / "t.pt"), horizon=300)
    torch.load(tmp_path / "t.pt", weights_only=True)
    loaded = load_teacher(str(tmp_path / "t.pt"), "diag_lowrank", C, rank=2)
    assert loaded.config["horizon"] == 300
    features = StudentState(1, 10).features(C)
    for name, value in teacher(features).items():
        torch.testing.assert_close(loaded(features)[name], value)


@pytest.mark.parametrize("load_kwargs, message", [
    (dict(parametrisation="full", num_classes=C), "built for parametrisation='bucketed'; this student needs 'full'"),
    (dict(parametrisation="bucketed", num_classes=C + 1), "num_classes=6; this student needs 7"),
    (dict(parametrisation="bucketed", num_classes=C, num_buckets=2), "num_buckets=3; this student needs 2"),
])
def test_teacher_for_another_student_is_refused(tmp_path, load_kwargs, message):
    save_teacher(build_teacher("gated", "bucketed", C, num_buckets=3), str(tmp_path / "t.pt"))
    with pytest.raises(PhiError, match=message):
        load_teacher(str(tmp_path / "t.pt"), **load_kwargs)


def test_missing_corrupt_and_unknown_teacher_files(tmp_path):
    with pytest.raises(PhiError, match="does not exist"):
        load_teacher(str(tmp_path / "none.pt"))
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(PhiError, match="weights_only=True"):
        load_teacher(str(tmp_path / "junk.pt"))
    torch.save({"config": {"kind": "oracle"}, "state_dict": {}}, tmp_path / "odd.pt")
    with pytest.raises(PhiError, match="unknown kind 'oracle'"):
        load_teacher(str(tmp_path / "odd.pt"))
    with pytest.raises(PhiError, match="unknown teacher kind 'oracle'"):
        build_teacher("oracle", "full", C)


@pytest.mark.parametrize("kind, form", [("gated", "prob"), ("gated", "paper"), ("bilinear", "paper")])
def test_untrained_teacher_is_the_initialisation_of_a_trained_one(tmp_path, kind, form):
    """A teacher trained away from its start, saved, then rebuilt untrained: the weights (and so
    every Phi_t) equal those of a fresh teacher of the same seed, and the horizon is kept."""
    fresh = build_teacher(kind, "bucketed", C, num_buckets=3, seed=7, form=form)
    trained = build_teacher(kind, "bucketed", C, num_buckets=3, seed=7, form=form)
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(0.5)
    save_teacher(trained, str(tmp_path / "t.pt"), horizon=300)
    rebuilt = untrained_teacher(str(tmp_path / "t.pt"))
    assert rebuilt.config["horizon"] == 300 and rebuilt.config["seed"] == 7
    for (name, value), (_, expected) in zip(rebuilt.state_dict().items(), fresh.state_dict().items()):
        assert torch.equal(value, expected), name
    features = StudentState(1, 10).features(C)
    assert not torch.equal(rebuilt(features)["B"], trained(features)["B"])


def test_untrained_teacher_of_a_file_without_seed(tmp_path):
    """Files written before the seed was recorded need it passed; a disagreeing seed is refused."""
    teacher = build_teacher("gated", "full", C, seed=3)
    payload = {"config": {k: v for k, v in teacher.config.items() if k != "seed"},
               "state_dict": teacher.state_dict()}
    torch.save(payload, tmp_path / "old.pt")
    assert load_teacher(str(tmp_path / "old.pt")).config["seed"] is None
    with pytest.raises(PhiError, match="does not record the seed.*--teacher-seed"):
        untrained_teacher(str(tmp_path / "old.pt"))
    rebuilt = untrained_teacher(str(tmp_path / "old.pt"), seed=3)
    for name, value in rebuilt.state_dict().items():
        assert torch.equal(value, teacher.state_dict()[name]), name
    save_teacher(teacher, str(tmp_path / "new.pt"))
    with pytest.raises(PhiError, match="initialised with seed 3; got seed=4"):
        untrained_teacher(str(tmp_path / "new.pt"), seed=4)


def test_untrained_teacher_script(tmp_path):
    """scripts/untrained_teacher.py writes a loadable file equal to the fresh teacher; a file
    without a seed and no --seed is refused (exit 2, the reason, nothing written)."""
    script = Path(__file__).resolve().parents[2] / "scripts" / "untrained_teacher.py"
    torch.set_default_dtype(torch.float32)  # the script's dtype (the fixture restores float64)
    teacher = build_teacher("gated", "bucketed", C, num_buckets=3, seed=2, form="prob")
    trained = build_teacher("gated", "bucketed", C, num_buckets=3, seed=2, form="prob")
    with torch.no_grad():
        trained.base["mix"].add_(3.0)
    save_teacher(trained, str(tmp_path / "t.pt"), horizon=50)
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "t.pt"), str(tmp_path / "u.pt")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    loaded = load_teacher(str(tmp_path / "u.pt"), "bucketed", C, num_buckets=3, form="prob")
    features = StudentState(3, 50).features(C)
    torch.testing.assert_close(loaded(features)["diag"], teacher(features)["diag"], rtol=0, atol=0)
    assert loaded.config["horizon"] == 50

    config = {k: v for k, v in trained.config.items() if k != "seed"}
    torch.save({"config": config, "state_dict": trained.state_dict()}, tmp_path / "old.pt")
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "old.pt"), str(tmp_path / "v.pt")],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "does not record the seed" in done.stderr
    assert not (tmp_path / "v.pt").exists()
