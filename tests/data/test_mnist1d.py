"""MNIST-1D generation and cache: determinism per data seed, stale caches refused, no network."""

import hashlib
import os
import random
import socket

import numpy as np
import pytest
import torch

from fairseq_dynloss.data import mnist1d
from fairseq_dynloss.data.mnist1d import (
    cache_key, cache_path, checksum, generation_args, load_mnist1d, load_mnist1d_splits)

SMALL = 200  # samples: 160 train / 40 test, ~0.1 s to generate


def digest(arrays):
    return hashlib.sha256(b"".join(np.ascontiguousarray(arrays[k]).tobytes()
                                   for k in ("x", "y", "x_test", "y_test"))).hexdigest()


def test_generation_is_deterministic_per_seed_and_differs_across_seeds(tmp_path):
    a = load_mnist1d(str(tmp_path / "a"), SMALL, 1)
    b = load_mnist1d(str(tmp_path / "b"), SMALL, 1)
    c = load_mnist1d(str(tmp_path / "c"), SMALL, 2)
    assert digest(a) == digest(b) != digest(c)
    assert a["x"].shape == (160, 40) and a["x_test"].shape == (40, 40)
    # an equal number per digit overall, as make_dataset builds it
    assert np.bincount(np.concatenate([a["y"], a["y_test"]]), minlength=10).tolist() == [20] * 10


def test_default_split_is_the_public_4000_1000(tmp_path):
    splits = load_mnist1d_splits(str(tmp_path), 5000, 42, val_size=500, split_seed=0)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (3500, 500, 1000)
    assert splits.input_shape == (1, 40) and splits.num_classes == 10
    signals, labels = splits.train.batch(torch.arange(4))
    assert signals.shape == (4, 1, 40) and signals.dtype == torch.float32
    no_val = load_mnist1d_splits(str(tmp_path), 5000, 42, val_size=0)
    assert no_val.val is None and len(no_val.train) == 4000
    # validation is carved from the training part: together they are the 4000 training samples
    both = torch.cat([splits.train.signals, splits.val.signals]).flatten(1)
    assert sorted(map(tuple, both.tolist())) == sorted(map(tuple, no_val.train.signals.flatten(1).tolist()))


def test_cache_is_reused_and_keyed_by_the_arguments(tmp_path, monkeypatch):
    first = load_mnist1d(str(tmp_path), SMALL, 3)
    path = cache_path(str(tmp_path), cache_key(generation_args(SMALL, 3)))
    assert os.path.exists(path)
    assert path != cache_path(str(tmp_path), cache_key(generation_args(SMALL, 4)))
    monkeypatch.setattr(mnist1d, "generate", lambda args: pytest.fail("regenerated a valid cache"))
    assert digest(load_mnist1d(str(tmp_path), SMALL, 3)) == digest(first)


@pytest.mark.parametrize("tamper", ["array", "key", "truncated"])
def test_a_stale_or_corrupt_cache_is_regenerated(tmp_path, tamper):
    fresh = load_mnist1d(str(tmp_path), SMALL, 5)
    key = cache_key(generation_args(SMALL, 5))
    path = cache_path(str(tmp_path), key)
    if tamper == "truncated":
        with open(path, "r+b") as handle:
            handle.truncate(100)
    else:
        arrays = dict(fresh)
        stored_key, stored_sum = key, checksum(arrays)
        if tamper == "array":  # the bytes changed after the checksum was taken
            arrays["y"] = (arrays["y"] + 1) % 10
        else:  # a file from other generation arguments under this name
            stored_key = key.replace('"seed": 5', '"seed": 6')
            arrays = load_mnist1d(str(tmp_path / "other"), SMALL, 6)
            stored_sum = checksum(arrays)
        with open(path, "wb") as handle:
            np.savez(handle, key=np.array(stored_key), checksum=np.array(stored_sum), **arrays)
    assert mnist1d.read_cache(path, key) is None
    assert digest(load_mnist1d(str(tmp_path), SMALL, 5)) == digest(fresh)
    assert mnist1d.read_cache(path, key) is not None  # rewritten


def test_generation_needs_no_network(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    arrays = load_mnist1d(str(tmp_path), SMALL, 7)
    assert arrays["x"].shape == (160, 40)


def test_global_random_state_is_left_alone(tmp_path):
    np.random.seed(123)
    random.seed(123)
    expected = (np.random.rand(), random.random())
    np.random.seed(123)
    random.seed(123)
    load_mnist1d(str(tmp_path), SMALL, 8)
    assert (np.random.rand(), random.random()) == expected


@pytest.mark.parametrize("num_samples", [15, 105, 0])
def test_bad_sample_counts_are_refused(tmp_path, num_samples):
    with pytest.raises(ValueError, match=f"num_samples={num_samples}"):
        load_mnist1d(str(tmp_path), num_samples, 0)


def test_bad_val_size_is_refused(tmp_path):
    with pytest.raises(ValueError, match="val_size=160"):
        load_mnist1d_splits(str(tmp_path), SMALL, 0, val_size=160)
