"""MNIST-1D (Greydanus 2020): procedural 1-D digits of length 40, generated offline and cached.

Generated as ``mnist1d.data.make_dataset`` does, bit for bit (``mnist1d_generate.py``), from
explicit arguments (the package's ``get_dataset`` tries an HTTP download first and is never
called). ``num_samples=5000, data_seed=42`` is the public
4000 train / 1000 test set; 50000 samples give 40000 / 10000. The package standardises the signals
over all samples (train and test together), as the published set does.

The arrays are cached in ``<data_dir>/mnist1d/`` under a name holding a hash of the generation
arguments; the file also stores those arguments and a SHA-256 of the arrays, and a file whose
arguments or checksum do not match is regenerated, never used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
from typing import Dict, Optional, Tuple

import numpy as np
import torch

from .images import Splits, split_indices

log = logging.getLogger(__name__)

CACHE_FORMAT = 1  # bump when what is stored changes
ARRAYS = ("x", "y", "x_test", "y_test")


class SignalDataset:
    """1-D signals held in memory, already standardised.

    Args:
        signals: (N, L) float.
        labels: (N,) class ids.
    """

    def __init__(self, signals: torch.Tensor, labels: torch.Tensor):
        if signals.dim() != 2 or labels.dim() != 1 or signals.size(0) != labels.size(0):
            raise ValueError(f"expected signals (N, L) and labels (N,); got {tuple(signals.shape)} "
                             f"and {tuple(labels.shape)}")
        self.signals = signals.float().unsqueeze(1).contiguous()  # (N, 1, L): one channel
        self.labels = labels.long()

    def __len__(self) -> int:
        return self.labels.numel()

    def batch(self, indices: torch.Tensor, augment: bool = False,
              generator: Optional[torch.Generator] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """Signals (B, 1, L) and labels (B,) of ``indices`` (no augmentation exists)."""
        return self.signals[indices], self.labels[indices]


def generation_args(num_samples: int, data_seed: int) -> Dict:
    """The complete ``make_dataset`` arguments: the package defaults with the sample count and seed
    set, and no download URL."""
    from mnist1d.data import get_dataset_args

    if not isinstance(num_samples, int) or num_samples < 20 or num_samples % 10:
        raise ValueError(f"task.num_samples={num_samples!r}; expected a multiple of 10 >= 20 "
                         "(an equal number per digit, 80 % train / 20 % test)")
    args = get_dataset_args(as_dict=True)
    args.pop("url")
    args.update(num_samples=num_samples, seed=int(data_seed), train_split=0.8)
    return args


def generate(args: Dict) -> Dict[str, np.ndarray]:
    """The package's ``make_dataset(args)``: x (N_train, 40) float64, y (N_train,) int64, and the
    test arrays.

    The package seeds numpy's and Python's global generators; their states are restored after,
    so generating data does not change any other random draw of the process.
    """
    from mnist1d.utils import ObjectView

    from .mnist1d_generate import make_dataset  # the package's arrays, bit for bit, ~10x faster

    numpy_state, python_state = np.random.get_state(), random.getstate()
    try:
        data = make_dataset(ObjectView(dict(args)))
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)
    return {name: np.ascontiguousarray(data[name]) for name in ARRAYS}


def checksum(arrays: Dict[str, np.ndarray]) -> str:
    """SHA-256 over the arrays' names, dtypes, shapes and bytes."""
    digest = hashlib.sha256()
    for name in ARRAYS:
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}:{array.dtype.str}:{array.shape};".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def cache_key(args: Dict) -> str:
    """Canonical JSON of what determines the arrays: the arguments, the package version, the cache
    format."""
    from importlib.metadata import version

    return json.dumps({"args": args, "mnist1d": version("mnist1d"), "format": CACHE_FORMAT},
                      sort_keys=True)


def cache_path(data_dir: str, key: str) -> str:
    name = hashlib.sha256(key.encode()).hexdigest()[:16]
    return os.path.join(os.path.expanduser(data_dir), "mnist1d", f"mnist1d-{name}.npz")


def read_cache(path: str, key: str) -> Optional[Dict[str, np.ndarray]]:
    """The cached arrays, or None (with a warning) when the file is missing, unreadable, made with
    other arguments, or its arrays do not match its checksum."""
    if not os.path.exists(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in ARRAYS}
            stored_key, stored_sum = str(stored["key"]), str(stored["checksum"])
    except Exception as error:  # a truncated or foreign file: regenerate
        log.warning("MNIST-1D cache %s unreadable (%s); regenerating", path, error)
        return None
    if stored_key != key:
        log.warning("MNIST-1D cache %s was made with other arguments; regenerating", path)
        return None
    if checksum(arrays) != stored_sum:
        log.warning("MNIST-1D cache %s fails its checksum; regenerating", path)
        return None
    return arrays


def load_mnist1d(data_dir: str, num_samples: int = 5000, data_seed: int = 42) -> Dict[str, np.ndarray]:
    """The MNIST-1D arrays for ``(num_samples, data_seed)``, from the cache or generated (then
    cached atomically)."""
    from fairseq_dynloss.atomic_save import atomic_write

    args = generation_args(num_samples, data_seed)
    key = cache_key(args)
    path = cache_path(data_dir, key)
    arrays = read_cache(path, key)
    if arrays is None:
        arrays = generate(args)

        def write(tmp: str) -> None:
            with open(tmp, "wb") as handle:  # a file object: np.savez would append ".npz"
                np.savez(handle, key=np.array(key), checksum=np.array(checksum(arrays)), **arrays)

        atomic_write(path, write)
    return arrays


def load_mnist1d_splits(data_dir: str, num_samples: int = 5000, data_seed: int = 42,
                        val_size: int = 0, split_seed: int = 0) -> Splits:
    """Train / validation / test of MNIST-1D; validation is carved from the training part.

    Args:
        data_dir: cache folder root.
        num_samples: total samples (80 % train, 20 % test).
        data_seed: seed of the generator (42: the public set), independent of the training seed.
        val_size: training samples held out for validation (0: none; the last epoch is then the
            one kept).
        split_seed: seed of the train / validation split.
    """
    arrays = load_mnist1d(data_dir, num_samples, data_seed)
    x, y = torch.from_numpy(arrays["x"]), torch.from_numpy(arrays["y"])
    test = SignalDataset(torch.from_numpy(arrays["x_test"]), torch.from_numpy(arrays["y_test"]))
    if not 0 <= val_size < y.numel():
        raise ValueError(f"task.val_size={val_size}; expected 0..{y.numel() - 1} of the "
                         f"{y.numel()} training samples")
    if val_size == 0:
        return Splits(SignalDataset(x, y), None, test, 10, (1, x.size(1)))
    train, val = split_indices(y.numel(), [val_size], split_seed)
    return Splits(SignalDataset(x[train], y[train]), SignalDataset(x[val], y[val]), test, 10,
                  (1, x.size(1)))
