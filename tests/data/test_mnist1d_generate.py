"""The fast MNIST-1D generator against the ``mnist1d`` package's own ``make_dataset``, bit for bit."""

import numpy as np
import pytest
from mnist1d.data import get_dataset_args, make_dataset as package_make_dataset
from mnist1d.utils import ObjectView

from fairseq_dynloss.data.mnist1d_generate import make_dataset

ARRAYS = ["x", "y", "x_test", "y_test", "t"]


@pytest.mark.parametrize("changes", [
    dict(num_samples=400, seed=42),                      # the public arguments, fewer samples
    dict(num_samples=300, seed=0, shuffle_seq=True),     # the spatially shuffled variant
    dict(num_samples=200, seed=7, padding=[10, 20], max_translation=5, final_seq_length=25),
])
def test_equals_the_package_bit_for_bit(changes):
    args = get_dataset_args(as_dict=True)
    args.update(changes)
    expected = package_make_dataset(ObjectView(dict(args)))
    got = make_dataset(ObjectView(dict(args)))
    for name in ARRAYS:
        assert got[name].dtype == expected[name].dtype, name
        assert np.array_equal(got[name], expected[name]), name


def test_leaves_the_generators_where_the_package_does():
    """Same draws in the same order: the global generators end in the package's state."""
    args = ObjectView(dict(get_dataset_args(as_dict=True), num_samples=100, seed=3))
    package_make_dataset(args)
    after_package = np.random.rand(4)
    make_dataset(args)
    assert np.array_equal(np.random.rand(4), after_package)
