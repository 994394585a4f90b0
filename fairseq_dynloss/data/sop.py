"""Stanford Online Products (Song et al. 2016) for metric learning.

The archive holds ``Ebay_train.txt`` and ``Ebay_test.txt``, list files with the header
``image_id class_id super_class_id path``; the standard split trains on the first 11318
classes (59551 images) and tests on the other 11316 (60502 images).
"""

from __future__ import annotations

import os
import shutil
import zipfile
from typing import List, Optional, Tuple

import numpy as np
import torch

from .download import download, verify_checksum
from .images import Splits

URLS = (
    "ftp://cs.stanford.edu/cs/cvgl/Stanford_Online_Products.zip",
    "http://ftp.cs.stanford.edu/cs/cvgl/Stanford_Online_Products.zip",
)
ZIP_NAME = "Stanford_Online_Products.zip"
ZIP_MD5 = "7f73d41a2f44250d4779881525aea32e"
FOLDER = "Stanford_Online_Products"
NUM_TRAIN_CLASSES = 11318
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HEADER = ["image_id", "class_id", "super_class_id", "path"]


class SOPFormatError(ValueError):
    """A list file does not follow SOP's format or split."""


def read_sop_list(path: str) -> Tuple[List[str], np.ndarray, np.ndarray]:
    """Parse ``Ebay_train.txt`` / ``Ebay_test.txt``.

    Returns:
        ``(paths, class_ids, super_class_ids)``: relative image paths and 1-based ids.
    """
    with open(path) as handle:
        lines = [line.split() for line in handle if line.strip()]
    if not lines or lines[0] != HEADER:
        raise SOPFormatError(f"{path}: first line must be {' '.join(HEADER)!r}")
    paths, classes, supers = [], [], []
    for number, fields in enumerate(lines[1:], start=2):
        if len(fields) != 4 or not all(f.isdigit() for f in fields[:3]):
            raise SOPFormatError(f"{path}:{number}: expected 'image_id class_id super_class_id path'")
        classes.append(int(fields[1]))
        supers.append(int(fields[2]))
        paths.append(fields[3])
    return paths, np.array(classes, dtype=np.int64), np.array(supers, dtype=np.int64)


class ImageFileDataset:
    """Images loaded from disk with PIL: square resize, then random (train) or centre crop.

    Args:
        paths: image files.
        labels: (N,) class ids.
        resize: side after resizing.
        crop: side of the crop fed to the network.
    """

    def __init__(self, paths: List[str], labels: torch.Tensor, resize: int = 256, crop: int = 224):
        self.paths = paths
        self.labels = labels.long()
        self.resize, self.crop = resize, crop
        self.mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)

    def __len__(self) -> int:
        return len(self.paths)

    def _load(self, path: str) -> torch.Tensor:
        try:
            from PIL import Image
        except ImportError:
            raise ImportError("task=sop reads JPEG images with Pillow: pip install pillow") from None
        with Image.open(path) as image:
            image = image.convert("RGB").resize((self.resize, self.resize), Image.BILINEAR)
            return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)

    def batch(self, indices: torch.Tensor, augment: bool = False,
              generator: Optional[torch.Generator] = None):
        """Normalised images (B, 3, crop, crop) and labels (B,)."""
        images = torch.stack([self._load(self.paths[i]) for i in indices.tolist()]).float() / 255
        margin = self.resize - self.crop
        n = images.size(0)
        if augment:
            offsets = torch.randint(0, margin + 1, (2, n), generator=generator)
            flips = torch.rand(n, generator=generator) < 0.5
        else:
            offsets = torch.full((2, n), margin // 2)
            flips = torch.zeros(n, dtype=torch.bool)
        crops = []
        for image, dy, dx, flip in zip(images, offsets[0].tolist(), offsets[1].tolist(), flips):
            crop = image[:, dy:dy + self.crop, dx:dx + self.crop]
            crops.append(crop.flip(-1) if flip else crop)
        return (torch.stack(crops) - self.mean) / self.std, self.labels[indices]


def load_sop_splits(root: str, download_files: bool = False, val_classes: int = 0,
                    num_train_classes: int = NUM_TRAIN_CLASSES, resize: int = 256, crop: int = 224,
                    md5: Optional[str] = ZIP_MD5) -> Splits:
    """SOP's standard split; optionally hold out the last ``val_classes`` training classes.

    Args:
        root: folder that holds (or receives) ``Stanford_Online_Products/``.
        download_files: download and unpack the zip (about 3 GB) if the folder is missing.
        val_classes: training classes held out as a validation set (0: no validation set).
        num_train_classes: classes 1..num_train_classes are training classes (11318).
    """
    folder = os.path.join(root, FOLDER)
    if not os.path.isdir(folder):
        if not download_files:
            raise FileNotFoundError(f"{folder} is missing; run with task.download=true")
        archive = download(URLS, os.path.join(root, ZIP_NAME), md5=md5)
        verify_checksum(archive, md5=md5)
        tmp = folder + ".tmp"
        try:
            with zipfile.ZipFile(archive) as handle:
                handle.extractall(tmp)
            os.replace(os.path.join(tmp, FOLDER), folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    train_paths, train_classes, _ = read_sop_list(os.path.join(folder, "Ebay_train.txt"))
    test_paths, test_classes, _ = read_sop_list(os.path.join(folder, "Ebay_test.txt"))
    if train_classes.max() > num_train_classes or test_classes.min() <= num_train_classes:
        raise SOPFormatError(
            f"expected training classes 1..{num_train_classes} and test classes above; got "
            f"{train_classes.min()}..{train_classes.max()} and {test_classes.min()}..{test_classes.max()}"
        )
    cut = num_train_classes - val_classes
    make = lambda keep, paths, classes, base: ImageFileDataset(
        [os.path.join(folder, p) for p, k in zip(paths, keep) if k],
        torch.from_numpy(classes[keep] - base), resize, crop)
    train = make(train_classes <= cut, train_paths, train_classes, 1)
    val = make(train_classes > cut, train_paths, train_classes, cut + 1) if val_classes else None
    test = make(np.ones_like(test_classes, dtype=bool), test_paths, test_classes, num_train_classes + 1)
    return Splits(train, val, test, num_classes=None, input_shape=(3, crop, crop))
