"""MNIST from its public IDX files (gzip), checksummed, parsed without torchvision."""

from __future__ import annotations

import gzip
import os
from typing import Dict, Optional

import numpy as np
import torch

from .download import download, verify_checksum
from .images import ImageTensorDataset, Splits, split_indices

MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
# The md5 sums published with torchvision's MNIST (the files are identical on both mirrors).
MD5: Dict[str, str] = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
MEAN, STD = 0.1307, 0.3081

_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class IDXFormatError(ValueError):
    """A file is not a valid IDX file."""


def read_idx(path: str) -> np.ndarray:
    """Parse an IDX file (gzip-compressed or not) into a numpy array of its declared shape.

    Format: two zero bytes, a type code, the number of dimensions, each dimension as a big-endian
    int32, then the data in big-endian order.
    """
    with open(path, "rb") as handle:
        raw = handle.read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise IDXFormatError(f"{path} is not an IDX file (magic bytes {raw[:4]!r})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int(d) for d in np.frombuffer(raw[4:header], dtype=">i4"))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise IDXFormatError(
            f"{path}: header declares shape {shape} ({expected} bytes of data) but the file has "
            f"{len(raw) - header}"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def load_mnist_splits(root: str, download_files: bool = False, val_size: int = 5000,
                      split_seed: int = 0, checksums: Optional[Dict[str, str]] = None) -> Splits:
    """MNIST train (minus ``val_size`` held out, seeded) / val / test (the 10k t10k set).

    Args:
        root: folder with the four ``*.gz`` files (``root/mnist``).
        download_files: fetch missing files from the public mirrors.
        val_size: training images held out for validation.
        split_seed: seed of that hold-out.
        checksums: md5 by file name (default: the published ones).
    """
    checksums = MD5 if checksums is None else checksums
    folder = os.path.join(root, "mnist")
    arrays = {}
    for name, md5 in checksums.items():
        path = os.path.join(folder, name)
        if download_files:
            download([m + name for m in MIRRORS], path, md5=md5)
        elif not os.path.exists(path):
            raise FileNotFoundError(
                f"{path} is missing; run with task.download=true or put the MNIST files there"
            )
        verify_checksum(path, md5=md5)
        arrays[name.split("-idx")[0]] = read_idx(path)
    for split in ("train", "t10k"):
        if arrays[f"{split}-images"].shape[0] != arrays[f"{split}-labels"].shape[0]:
            raise IDXFormatError(f"MNIST {split}: image and label counts differ")
    images = torch.from_numpy(arrays["train-images"].copy()).unsqueeze(1)
    labels = torch.from_numpy(arrays["train-labels"].astype(np.int64))
    train, val = split_indices(labels.numel(), [val_size], split_seed)
    make = lambda x, y: ImageTensorDataset(x, y, scale=1 / 255, mean=(MEAN,), std=(STD,))
    test_images = torch.from_numpy(arrays["t10k-images"].copy()).unsqueeze(1)
    test_labels = torch.from_numpy(arrays["t10k-labels"].astype(np.int64))
    return Splits(make(images[train], labels[train]), make(images[val], labels[val]),
                  make(test_images, test_labels), num_classes=10,
                  input_shape=tuple(images.shape[1:]))
