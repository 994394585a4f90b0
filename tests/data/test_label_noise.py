"""Label noise: noise matrices against hand values, realised rates, determinism, bad matrices."""

import subprocess
import sys

import pytest
import torch
from omegaconf import OmegaConf

from fairseq_dynloss.data.label_noise import (
    NoiseMatrixError, apply_label_noise, load_noise_matrix, noise_matrix, noise_matrix_of,
    random_sparse_noise_matrix, transition_counts, write_noise_matrix, write_transition_counts)

REPO = __import__("pathlib").Path(__file__).resolve().parents[2]


def test_matrices_match_hand_values():
    assert torch.equal(noise_matrix("none", 0.0, 3), torch.eye(3, dtype=torch.float64))
    symmetric = torch.tensor([[0.7, 0.15, 0.15], [0.15, 0.7, 0.15], [0.15, 0.15, 0.7]],
                             dtype=torch.float64)
    torch.testing.assert_close(noise_matrix("symmetric", 0.3, 3), symmetric)
    pairflip = torch.tensor([[0.6, 0.4, 0.0], [0.0, 0.6, 0.4], [0.4, 0.0, 0.6]], dtype=torch.float64)
    torch.testing.assert_close(noise_matrix("pairflip", 0.4, 3), pairflip)


@pytest.mark.parametrize("kind", ["symmetric", "pairflip"])
@pytest.mark.parametrize("rate", [0.2, 0.4, 0.45])
def test_realised_rate_within_1_5_points_on_4000_labels(kind, rate):
    labels = torch.randint(0, 10, (4000,), generator=torch.Generator().manual_seed(3))
    T = noise_matrix(kind, rate, 10)
    for seed in range(5):
        noisy = apply_label_noise(labels, T, seed)
        assert abs((noisy != labels).double().mean().item() - rate) <= 0.015
        # per class: the realised row equals T's row up to rounding of n_i T[i, j]
        counts = transition_counts(labels, noisy, 10).double()
        n = counts.sum(1, keepdim=True)
        assert torch.all((counts - n * T).abs() <= 1.0)
        assert torch.equal(counts.sum(1), torch.bincount(labels, minlength=10).double())


def test_noise_is_deterministic_per_seed_and_leaves_the_input_alone():
    labels = torch.arange(10).repeat(50)
    before = labels.clone()
    T = noise_matrix("symmetric", 0.4, 10)
    a, b, c = (apply_label_noise(labels, T, s) for s in (7, 7, 8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(labels, before)


def test_transition_counts_and_csv(tmp_path):
    clean = torch.tensor([0, 0, 1, 2, 2, 2])
    noisy = torch.tensor([0, 1, 1, 0, 2, 2])
    counts = transition_counts(clean, noisy, 3)
    assert counts.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    path = tmp_path / "label_noise.csv"
    write_transition_counts(str(path), counts)
    assert path.read_text().splitlines() == ["true,noisy_0,noisy_1,noisy_2", "0,1,1,0", "1,0,1,0",
                                             "2,1,0,2"]


def test_matrix_file_round_trip_and_config(tmp_path):
    T = random_sparse_noise_matrix(10, 0.4, seed=1)
    path = tmp_path / "T.csv"
    write_noise_matrix(str(path), T)
    torch.testing.assert_close(load_noise_matrix(str(path), 10), T, rtol=0, atol=1e-15)
    cfg = OmegaConf.create({"label_noise": {"kind": "matrix", "rate": 0.0, "matrix": str(path)}})
    torch.testing.assert_close(noise_matrix_of(cfg, 10), T, rtol=0, atol=1e-15)
    # a task config without the section means no noise
    assert torch.equal(noise_matrix_of(OmegaConf.create({}), 4), torch.eye(4, dtype=torch.float64))


def test_random_sparse_matrix_is_sparse_asymmetric_and_seeded():
    T = random_sparse_noise_matrix(10, 0.4, seed=0)
    torch.testing.assert_close(T.sum(1), torch.ones(10, dtype=torch.float64))
    torch.testing.assert_close(T.diagonal(), torch.full((10,), 0.6, dtype=torch.float64))
    off = T - torch.diag(T.diagonal())
    assert ((off > 0).sum(1) >= 1).all() and ((off > 0).sum(1) <= 2).all()
    assert not torch.equal(T, T.t())
    assert torch.equal(T, random_sparse_noise_matrix(10, 0.4, seed=0))
    assert not torch.equal(T, random_sparse_noise_matrix(10, 0.4, seed=1))


def test_make_noise_matrix_script(tmp_path):
    path = tmp_path / "noise.csv"
    subprocess.run([sys.executable, str(REPO / "scripts/make_noise_matrix.py"), str(path),
                    "--classes", "5", "--rate", "0.3", "--seed", "2"], check=True,
                   capture_output=True)
    torch.testing.assert_close(load_noise_matrix(str(path), 5),
                               random_sparse_noise_matrix(5, 0.3, seed=2), rtol=0, atol=1e-15)


@pytest.mark.parametrize("text, message", [
    ("1,0\n0,1\n", "2 rows; expected 3"),
    ("1,0,0\n0,1\n0,0,1\n", "row 1 has 2 entries"),
    ("1,0,0\n0,x,1\n0,0,1\n", "row 1 holds a non-number"),
    ("1,0,0\n0,1,0\n-0.1,0.1,1\n", "row 2 has entry -0.1 outside"),
    ("1,0,0\n0,1,0\n0,0,nan\n", "row 2 has entry nan"),
    ("1,0,0\n0,0.5,0.4\n0,0,1\n", "row 1 sums to 0.9"),
    ("1,0,0\n0,1.5,-0.5\n0,0,1\n", "row 1 has entry 1.5"),
])
def test_bad_matrix_files_are_refused(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(NoiseMatrixError, match=message):
        noise_matrix("matrix", 0.0, 3, str(path))


def test_row_sum_tolerance_is_1e_6(tmp_path):
    path = tmp_path / "near.csv"
    path.write_text("0.9999995,0.0000001\n0,1\n")
    assert load_noise_matrix(str(path), 2)[0, 0] == 0.9999995
    path.write_text("0.999998,0\n0,1\n")
    with pytest.raises(NoiseMatrixError, match="row 0 sums to"):
        load_noise_matrix(str(path), 2)


@pytest.mark.parametrize("args, message", [
    (("flip", 0.2, 10), "valid choices: none, symmetric, pairflip, matrix"),
    (("symmetric", 1.2, 10), "rate=1.2"),
    (("pairflip", -0.1, 10), "rate=-0.1"),
    (("none", 0.3, 10), "rate=0.3 with kind=none"),
    (("symmetric", 0.2, 1), "at least 2 classes"),
    (("matrix", 0.0, 10), "needs label_noise.matrix"),
    (("matrix", 0.0, 10, "/no/such/file.csv"), "no such file"),
    (("pairflip", 0.2, 10, "T.csv"), "only read with kind=matrix"),
])
def test_bad_settings_are_refused(args, message):
    with pytest.raises(NoiseMatrixError, match=message):
        noise_matrix(*args)


def test_labels_outside_the_matrix_are_refused():
    with pytest.raises(NoiseMatrixError, match=r"class ids in \[0, 3\)"):
        apply_label_noise(torch.tensor([0, 3]), noise_matrix("none", 0.0, 3), 0)
