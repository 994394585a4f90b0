"""Files the project reads are validated at load, naming the file (issue 17, items 6 and 8):
NaN / Inf weights, a NaN horizon, a crafted size (refused before anything is allocated),
complex, sparse, empty or corrupted files; and what the project writes: atomic, fsynced,
checksummed, with the usual permissions."""

import math
import os

import pytest
import torch

from fairseq_dynloss import atomic_save
from fairseq_dynloss.atomic_save import atomic_torch_save
from fairseq_dynloss.controllers import ControllerError, PairPolicy, load_controller, save_controller
from fairseq_dynloss.losses import PhiError
from fairseq_dynloss.losses.phi import FullPhi, load_phi_file, save_phi
from fairseq_dynloss.teacher import build_teacher, load_teacher, save_teacher

# real builds of these sizes would need terabytes: a PhiError / ControllerError (not a
# RuntimeError from the allocator, nor a hang) shows the size was refused before allocating
HUGE = 10**12  # teacher: hidden x features
HUGE_POLICY = 10**7  # policy: hidden x hidden


def resave(path, edit):
    """Load ``path``, ``edit`` the payload in place, write it back as a crafted file would be
    (plain ``torch.save``, no checksum)."""
    payload = torch.load(path, weights_only=True)
    payload.pop("checksum", None)
    edit(payload)
    torch.save(payload, path)


@pytest.fixture
def teacher_file(tmp_path):
    path = str(tmp_path / "teacher.pt")
    save_teacher(build_teacher("gated", "full", 4, num_gates=2, hidden=8, seed=0), path, horizon=100)
    load_teacher(path, "full", 4)  # the file as written loads
    return path


def first_tensor(state):
    return next(iter(state.values()))


@pytest.mark.parametrize("edit, message", [
    (lambda p: first_tensor(p["state_dict"]).view(-1)[0].fill_(math.nan), "non-finite value"),
    (lambda p: first_tensor(p["state_dict"]).view(-1)[0].fill_(math.inf), "non-finite value"),
    (lambda p: p["config"].update(horizon=math.nan), "horizon=nan; expected an integer >= 1"),
    (lambda p: p["config"].update(horizon=0), "horizon=0; expected an integer >= 1"),
    (lambda p: p["config"].update(hidden=HUGE), "does not match its config"),
    (lambda p: p["config"].update(hidden=-4), "hidden=-4; expected an integer >= 1"),
])
def test_a_bad_teacher_file_is_refused_naming_it(teacher_file, edit, message):
    resave(teacher_file, edit)
    with pytest.raises(PhiError, match=message) as error:
        load_teacher(teacher_file, "full", 4)
    assert repr(teacher_file) in str(error.value)


def test_flipped_bytes_in_a_teacher_file_are_detected(teacher_file):
    weight = first_tensor(torch.load(teacher_file, weights_only=True)["state_dict"])
    data = bytearray(open(teacher_file, "rb").read())
    at = data.find(weight.flatten()[:2].numpy().tobytes())
    data[at] ^= 0x01  # torch's own loader does not notice
    open(teacher_file, "wb").write(bytes(data))
    torch.load(teacher_file, weights_only=True)
    with pytest.raises(PhiError, match="is corrupted"):
        load_teacher(teacher_file, "full", 4)


@pytest.fixture
def controller_file(tmp_path):
    path = str(tmp_path / "ala_controller.pt")
    save_controller(path, PairPolicy(5, hidden=6, seed=0))
    load_controller(path, 5)
    return path


@pytest.mark.parametrize("edit, message", [
    (lambda p: first_tensor(p["policy"]).view(-1)[0].fill_(math.nan), "non-finite value"),
    (lambda p: p["config"].update(hidden=HUGE_POLICY), "does not match its config"),
    (lambda p: p["config"].update(hidden=math.nan), "hidden=nan; expected an integer >= 1"),
    (lambda p: p["policy"].update({k: v.to_sparse() for k, v in list(p["policy"].items())[:1]}),
     "expected a dense tensor"),
    (lambda p: p["policy"].update({k: v.to(torch.complex64) for k, v in list(p["policy"].items())[:1]}),
     "expected real values"),
])
def test_a_bad_controller_file_is_refused_naming_it(controller_file, edit, message):
    resave(controller_file, edit)
    with pytest.raises(ControllerError, match=message) as error:
        load_controller(controller_file, 5)
    assert repr(controller_file) in str(error.value)


@pytest.mark.parametrize("payload, message", [
    (torch.eye(3, dtype=torch.complex64), "complex"),
    (torch.eye(3).to_sparse(), "dense"),
    ({"parametrisation": "full", "tensors": {"matrix": torch.eye(3).to_sparse()}}, "dense"),
])
def test_complex_and_sparse_phi_files_are_refused_cleanly(tmp_path, payload, message):
    path = tmp_path / "phi.pt"
    torch.save(payload, path)
    phi = FullPhi(3)
    before = phi.matrix.clone()
    with pytest.raises(PhiError, match=message):
        load_phi_file(phi, str(path))
    assert torch.equal(phi.matrix, before)


def test_an_empty_phi_file_gets_a_reason(tmp_path):
    (tmp_path / "phi.pt").write_bytes(b"")
    with pytest.raises(PhiError, match=r"phi\.pt' is empty \(0 bytes\)"):
        load_phi_file(FullPhi(3), str(tmp_path / "phi.pt"))
    (tmp_path / "phi.pt").write_bytes(b"\x80")  # one byte of a pickle: EOFError has no message
    with pytest.raises(PhiError, match=r"weights_only=True: \S"):
        load_phi_file(FullPhi(3), str(tmp_path / "phi.pt"))


def test_written_files_get_the_usual_permissions_and_are_fsynced(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(atomic_save.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    save_teacher(build_teacher("gated", "full", 3, num_gates=1, hidden=4, seed=0), str(tmp_path / "teacher.pt"))
    save_controller(str(tmp_path / "ala_controller.pt"), PairPolicy(5, hidden=6, seed=0))
    save_phi(FullPhi(3), str(tmp_path / "phi.pt"))
    mask = os.umask(0)
    os.umask(mask)
    for name in ("teacher.pt", "ala_controller.pt", "phi.pt"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~mask, name
    assert len(synced) == 6  # each file, then its folder
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ala_controller.pt", "phi.pt", "teacher.pt"]


def test_the_checksum_covers_structure_values_and_tensor_bytes(tmp_path):
    path = str(tmp_path / "x.pt")
    payload = {"a": torch.arange(4.0), "b": [1, "two", None], "c": {"d": torch.ones(2, dtype=torch.bfloat16)}}
    atomic_torch_save(payload, path)
    saved = torch.load(path, weights_only=True)
    from fairseq_dynloss.file_checks import tensor_checksum

    assert saved["checksum"] == tensor_checksum(saved) == tensor_checksum(payload)
    for change in (lambda p: p["a"].add_(1e-6), lambda p: p["b"].append(3), lambda p: p.update(a=p["a"].view(2, 2))):
        altered = {k: (v.clone() if isinstance(v, torch.Tensor) else (list(v) if isinstance(v, list) else v))
                   for k, v in payload.items()}
        change(altered)
        assert tensor_checksum(altered) != tensor_checksum(payload)
