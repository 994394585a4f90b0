"""scikit-learn's bundled 8x8 digits (1797 images, 10 classes): the offline default task."""

from __future__ import annotations

import torch

from .images import ImageTensorDataset, Splits, split_indices


def load_digits_splits(val_size: int = 360, test_size: int = 360, split_seed: int = 0) -> Splits:
    """Fixed seeded train/val/test split of ``sklearn.datasets.load_digits``.

    Pixels (0..16) are scaled to [0, 1] and normalised with the training mean and std.

    Args:
        val_size, test_size: examples held out for validation and test.
        split_seed: seed of the split (independent of the training seed, so runs compare).
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    labels = torch.tensor(bunch.target, dtype=torch.long)
    train, val, test = split_indices(labels.numel(), [val_size, test_size], split_seed)
    mean = images[train].mean().item()
    std = images[train].std().item()
    make = lambda idx: ImageTensorDataset(images[idx], labels[idx], mean=(mean,), std=(std,))
    return Splits(make(train), make(val), make(test), num_classes=10, input_shape=(1, 8, 8))
