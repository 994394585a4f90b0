"""In-memory image datasets and the train/val/test triple every trainer task returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import torch

from .augment import random_crop_flip


class ImageTensorDataset:
    """Images held in memory (uint8 or float), normalised batch by batch.

    Args:
        images: (N, C, H, W) raw pixels.
        labels: (N,) class ids.
        scale: multiplies the raw pixels first (1/255 for bytes).
        mean, std: per-channel normalisation applied after scaling.
        crop_padding: random-crop padding for training batches (0: none).
        flip: random horizontal flips for training batches.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, scale: float = 1.0,
                 mean: Sequence[float] = (0.0,), std: Sequence[float] = (1.0,),
                 crop_padding: int = 0, flip: bool = False):
        if images.dim() != 4 or labels.dim() != 1 or images.size(0) != labels.size(0):
            raise ValueError(
                f"expected images (N, C, H, W) and labels (N,); got {tuple(images.shape)} and "
                f"{tuple(labels.shape)}"
            )
        self.images = images
        self.labels = labels.long()
        self.scale = scale
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        self.crop_padding = crop_padding
        self.flip = flip
        # Float images without crops are normalised once (flips commute with normalisation);
        # bytes stay bytes (4x less memory) and are normalised batch by batch.
        self.normalized = images.is_floating_point() and crop_padding == 0
        if self.normalized:
            self.images = (images.float() * scale - self.mean) / self.std

    def __len__(self) -> int:
        return self.labels.numel()

    def batch(self, indices: torch.Tensor, augment: bool = False,
              generator: Optional[torch.Generator] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """Normalised float images (B, C, H, W) and labels (B,) of ``indices``."""
        if self.normalized:
            images = self.images[indices]
            if augment and self.flip:
                images = random_crop_flip(images, 0, True, generator)
            return images, self.labels[indices]
        images = self.images[indices].float() * self.scale
        if augment and (self.crop_padding > 0 or self.flip):
            # Augment before normalising so that crop padding is black, as in He et al.
            images = random_crop_flip(images, self.crop_padding, self.flip, generator)
        return (images - self.mean) / self.std, self.labels[indices]


@dataclass
class Splits:
    """What a task provides: three datasets and their shape.

    Attributes:
        train, val, test: datasets with ``__len__``, ``labels`` and ``batch(indices, ...)``.
        num_classes: number of training classes (classification) or None (metric learning).
        input_shape: (C, H, W) of one image.
    """

    train: object
    val: object
    test: object
    num_classes: Optional[int]
    input_shape: Tuple[int, int, int]


def split_indices(n: int, sizes: Sequence[int], seed: int = 0) -> list:
    """A fixed seeded random partition of ``range(n)`` into parts of ``sizes`` (the rest first).

    Returns:
        ``[rest, part_1, ..., part_k]`` as index tensors.
    """
    if sum(sizes) >= n:
        raise ValueError(f"split sizes {list(sizes)} leave no training examples out of {n}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    parts, start = [], n - sum(sizes)
    parts.append(order[:start].sort().values)
    for size in sizes:
        parts.append(order[start:start + size].sort().values)
        start += size
    return parts
