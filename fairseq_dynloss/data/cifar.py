"""CIFAR-10/100 from the "python version" tarballs (pickled batches), checksummed."""

from __future__ import annotations

import os
import pickle
import tarfile
from typing import Dict, Optional

import numpy as np
import torch

from .download import download, verify_checksum
from .images import ImageTensorDataset, Splits, split_indices

# URLs and md5 sums as published on https://www.cs.toronto.edu/~kriz/cifar.html
ARCHIVES: Dict[int, Dict[str, object]] = {
    10: {
        "url": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "file": "cifar-10-python.tar.gz",
        "md5": "c58f30108f718f92721af3b95e74349a",
        "train": [f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6)],
        "test": ["cifar-10-batches-py/test_batch"],
        "label_key": b"labels",
    },
    100: {
        "url": "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        "file": "cifar-100-python.tar.gz",
        "md5": "eb9058c3a382ffc7106e4002c42a8d85",
        "train": ["cifar-100-python/train"],
        "test": ["cifar-100-python/test"],
        "label_key": b"fine_labels",
    },
}
MEAN = {10: (0.4914, 0.4822, 0.4465), 100: (0.5071, 0.4865, 0.4409)}
STD = {10: (0.2470, 0.2435, 0.2616), 100: (0.2673, 0.2564, 0.2762)}


class CifarFormatError(ValueError):
    """The archive does not hold CIFAR's pickled batches."""


def read_cifar_archive(path: str, num_classes: int):
    """Parse the pickled batches of a CIFAR tarball without extracting it.

    Returns:
        ``(train_images, train_labels, test_images, test_labels)``: uint8 (N, 3, 32, 32) and
        int64 (N,) numpy arrays.
    """
    spec = ARCHIVES[num_classes]
    out = []
    with tarfile.open(path, "r:gz") as archive:
        for part in ("train", "test"):
            images, labels = [], []
            for member in spec[part]:
                try:
                    handle = archive.extractfile(member)
                except KeyError:
                    raise CifarFormatError(f"{path} has no member {member!r}") from None
                # Trusted only after the md5 check; the batches are pickled dicts of bytes keys.
                batch = pickle.load(handle, encoding="bytes")
                data = np.asarray(batch[b"data"], dtype=np.uint8)
                if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
                    raise CifarFormatError(f"{path}:{member}: data has shape {data.shape}")
                images.append(data.reshape(-1, 3, 32, 32))
                labels.append(np.asarray(batch[spec["label_key"]], dtype=np.int64))
            out += [np.concatenate(images), np.concatenate(labels)]
    for labels in (out[1], out[3]):
        if labels.min() < 0 or labels.max() >= num_classes:
            raise CifarFormatError(f"{path}: labels outside [0, {num_classes})")
    return tuple(out)


def load_cifar_splits(root: str, num_classes: int = 10, download_files: bool = False,
                      val_size: int = 5000, split_seed: int = 0, crop_padding: int = 4,
                      flip: bool = True, md5: Optional[str] = None) -> Splits:
    """CIFAR-10 or -100: train (minus a seeded ``val_size`` hold-out) / val / test.

    Training batches get random crops (``crop_padding``) and flips; val/test are untouched.

    Args:
        root: folder holding the tarball.
        num_classes: 10 or 100.
        download_files: fetch the tarball if missing.
        md5: expected checksum (default: the published one).
    """
    if num_classes not in ARCHIVES:
        raise ValueError(f"num_classes={num_classes}; CIFAR has 10 or 100")
    spec = ARCHIVES[num_classes]
    md5 = spec["md5"] if md5 is None else md5
    path = os.path.join(root, spec["file"])
    if download_files:
        download([spec["url"]], path, md5=md5)
    elif not os.path.exists(path):
        raise FileNotFoundError(f"{path} is missing; run with task.download=true or put it there")
    verify_checksum(path, md5=md5)
    train_x, train_y, test_x, test_y = (torch.from_numpy(a) for a in read_cifar_archive(path, num_classes))
    train, val = split_indices(train_y.numel(), [val_size], split_seed)
    common = dict(scale=1 / 255, mean=MEAN[num_classes], std=STD[num_classes])
    return Splits(
        ImageTensorDataset(train_x[train], train_y[train], crop_padding=crop_padding, flip=flip, **common),
        ImageTensorDataset(train_x[val], train_y[val], **common),
        ImageTensorDataset(test_x, test_y, **common),
        num_classes=num_classes, input_shape=(3, 32, 32),
    )
