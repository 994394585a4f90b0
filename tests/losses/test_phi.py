"""Phi parametrisations: equality with the materialised matrix, statistics, files, errors."""

import pytest
import torch

from fairseq_dynloss.losses import (
    BucketedPhi,
    DiagLowRankPhi,
    FullPhi,
    PhiError,
    build_phi,
    frequency_buckets,
    load_phi_file,
    save_phi,
)

pytestmark = pytest.mark.usefixtures("float64_default")


def random_lprobs(n, c, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.log_softmax(torch.randn(n, c, generator=g) * 2, dim=-1)


def randomise(phi, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in phi.tensors().values():
            tensor.copy_(torch.randn(tensor.shape, generator=g))
    return phi


def reference_row_dot(matrix, lprobs, target):
    """Naive loop: u[n] = sum_j Phi[y_n, j] * lprobs[n, j]."""
    return torch.stack([
        sum(matrix[target[n], j] * lprobs[n, j] for j in range(lprobs.size(1)))
        for n in range(lprobs.size(0))
    ])


@pytest.mark.parametrize("phi", [
    FullPhi(7),
    DiagLowRankPhi(7, rank=3),
    BucketedPhi(7, torch.tensor([0, 1, 2, 0, 1, 2, 2])),
], ids=lambda p: p.parametrisation)
def test_row_dot_matches_materialised_matrix(phi):
    phi = randomise(phi.double())
    lprobs = random_lprobs(11, 7)
    target = torch.randint(0, 7, (11,), generator=torch.Generator().manual_seed(1))
    expected = reference_row_dot(phi.materialize(), lprobs, target)
    torch.testing.assert_close(phi.row_dot(lprobs, target), expected, rtol=1e-12, atol=1e-12)
    # The same Phi as a dense `full` parametrisation gives the same u.
    full = FullPhi(7).double()
    full.load_tensors({"matrix": phi.materialize().detach()})
    torch.testing.assert_close(full.row_dot(lprobs, target), expected, rtol=1e-12, atol=1e-12)


def test_materialize_by_hand():
    low = DiagLowRankPhi(3, rank=1).double()
    low.load_tensors({
        "diag": torch.tensor([1.0, 2.0, 3.0]),
        "U": torch.tensor([[1.0], [0.0], [2.0]]),
        "V": torch.tensor([[0.5], [1.0], [0.0]]),
    })
    expected = torch.tensor([[1.5, 1.0, 0.0], [0.0, 2.0, 0.0], [1.0, 2.0, 3.0]])
    torch.testing.assert_close(low.materialize(), expected)

    buck = BucketedPhi(3, torch.tensor([0, 1, 0])).double()
    buck.load_tensors({"diag": torch.tensor([1.0, 1.0, 1.0]), "B": torch.tensor([[0.1, 0.2], [0.3, 0.4]])})
    expected = torch.tensor([[1.1, 0.2, 0.1], [0.3, 1.4, 0.3], [0.1, 0.2, 1.1]])
    torch.testing.assert_close(buck.materialize(), expected)


@pytest.mark.parametrize("name", ["full", "diag_lowrank", "bucketed"])
def test_identity_initialisation(name):
    phi = build_phi(name, 6, rank=2, num_buckets=3).double()
    torch.testing.assert_close(phi.materialize(), torch.eye(6))


@pytest.mark.parametrize("phi", [
    FullPhi(6), DiagLowRankPhi(6, rank=2), BucketedPhi(6, torch.tensor([0, 0, 1, 1, 2, 2]))
], ids=lambda p: p.parametrisation)
def test_statistics_match_materialised_matrix_and_follow_updates(phi):
    phi = randomise(phi.double(), seed=3)
    dense = phi.materialize()
    off = dense - torch.diag(dense.diagonal())
    stats = phi.statistics()
    assert stats["phi_diag_mean"] == pytest.approx(dense.diagonal().mean().item(), rel=1e-12)
    assert stats["phi_offdiag_absmean"] == pytest.approx(off.abs().sum().item() / 30, rel=1e-12)
    # An in-place update invalidates the cache.
    with torch.no_grad():
        next(iter(phi.tensors().values())).mul_(2.0)
    assert phi.statistics()["phi_diag_mean"] == pytest.approx(
        phi.materialize().diagonal().mean().item(), rel=1e-12)


def test_frequency_buckets_by_hand():
    # counts by class: class 2 is most frequent, then 0, then 3/1 (tie keeps class order).
    counts = [50, 5, 100, 5, 1, 1]
    buckets = frequency_buckets(counts, 3)
    # rank order: 2, 0, 1, 3, 4, 5 -> buckets 0, 0, 1, 1, 2, 2
    assert buckets.tolist() == [0, 1, 0, 1, 2, 2]
    assert frequency_buckets(counts, 6).tolist() == [1, 2, 0, 3, 4, 5]


@pytest.mark.parametrize("kwargs, message", [
    (dict(parametrisation="dense", num_classes=5), "unknown Phi parametrisation 'dense'"),
    (dict(parametrisation="diag_lowrank", num_classes=5, rank=0), "rank=0"),
    (dict(parametrisation="diag_lowrank", num_classes=5, rank=-3), "rank=-3"),
    (dict(parametrisation="bucketed", num_classes=5, num_buckets=6), "buckets=6 exceeds the vocabulary size 5"),
    (dict(parametrisation="bucketed", num_classes=5, num_buckets=0), "buckets=0"),
    (dict(parametrisation="full", num_classes=0), "num_classes=0"),
])
def test_build_phi_errors(kwargs, message):
    with pytest.raises(PhiError, match=message):
        build_phi(**kwargs)


@pytest.mark.parametrize("name", ["full", "diag_lowrank", "bucketed"])
def test_save_and_load_roundtrip(tmp_path, name):
    phi = randomise(build_phi(name, 5, rank=2, num_buckets=2), seed=4)
    path = tmp_path / "phi.pt"
    save_phi(phi, str(path))
    # The file is readable by the safe loader.
    torch.load(path, weights_only=True)
    fresh = build_phi(name, 5, rank=2, num_buckets=2)
    load_phi_file(fresh, str(path))
    torch.testing.assert_close(fresh.materialize(), phi.materialize())


def test_load_bare_full_matrix(tmp_path):
    matrix = torch.arange(9.0).reshape(3, 3)
    torch.save(matrix, tmp_path / "m.pt")
    phi = FullPhi(3)
    load_phi_file(phi, str(tmp_path / "m.pt"))
    torch.testing.assert_close(phi.matrix, matrix.to(phi.matrix.dtype))


@pytest.mark.parametrize("payload, phi_factory, message", [
    (torch.eye(4), lambda: FullPhi(3), r"'matrix' has shape \(4, 4\); expected \(3, 3\)"),
    (torch.tensor([[1.0, float("nan")], [0.0, 1.0]]), lambda: FullPhi(2), "1 non-finite values"),
    (torch.tensor([[1.0, float("inf")], [0.0, 1.0]]), lambda: FullPhi(2), "non-finite"),
    (torch.eye(3), lambda: DiagLowRankPhi(3, 1), "only initialises a 'full' Phi"),
    ({"parametrisation": "full", "tensors": {"matrix": torch.eye(3)}}, lambda: DiagLowRankPhi(3, 1),
     "is for parametrisation 'full'; expected 'diag_lowrank'"),
    ({"parametrisation": "diag_lowrank", "tensors": {"diag": torch.ones(3)}}, lambda: DiagLowRankPhi(3, 1),
     "must have keys"),
    ({"parametrisation": "diag_lowrank",
      "tensors": {"diag": torch.ones(3), "U": torch.zeros(3, 2), "V": torch.zeros(3, 1)}},
     lambda: DiagLowRankPhi(3, 1), r"'U' has shape \(3, 2\); expected \(3, 1\)"),
    ([1, 2, 3], lambda: FullPhi(3), "must hold a"),
])
def test_bad_phi_files_raise_and_leave_phi_untouched(tmp_path, payload, phi_factory, message):
    path = tmp_path / "bad.pt"
    torch.save(payload, path)
    phi = phi_factory()
    before = {k: v.clone() for k, v in phi.tensors().items()}
    with pytest.raises(PhiError, match=message):
        load_phi_file(phi, str(path))
    for key, value in phi.tensors().items():
        assert torch.equal(value, before[key])


class NotAllowed:
    """Any class outside torch's weights-only allow-list."""


def test_missing_corrupt_and_unsafe_phi_files(tmp_path):
    with pytest.raises(PhiError, match="does not exist"):
        load_phi_file(FullPhi(2), str(tmp_path / "nope.pt"))
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(PhiError, match="weights_only=True"):
        load_phi_file(FullPhi(2), str(tmp_path / "junk.pt"))
    torch.save({"parametrisation": "full", "tensors": {"matrix": NotAllowed()}}, tmp_path / "unsafe.pt")
    with pytest.raises(PhiError, match="weights_only=True"):
        load_phi_file(FullPhi(2), str(tmp_path / "unsafe.pt"))


def test_save_phi_writes_nothing_on_failure(tmp_path):
    phi = FullPhi(2)
    target = tmp_path / "missing_dir" / "phi.pt"
    with pytest.raises(OSError):
        save_phi(phi, str(target))
    assert not target.exists()


@pytest.mark.parametrize("phi", [
    FullPhi(7), DiagLowRankPhi(7, rank=3), BucketedPhi(7, torch.tensor([0, 1, 2, 0, 1, 2, 2])),
], ids=lambda p: p.parametrisation)
def test_rows_match_materialised_matrix(phi):
    phi = randomise(phi.double(), seed=5)
    index = torch.tensor([3, 0, 6, 3])
    torch.testing.assert_close(phi.rows(index), phi.materialize()[index], rtol=1e-12, atol=1e-12)
