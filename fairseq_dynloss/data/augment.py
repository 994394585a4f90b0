"""Image augmentation in plain torch (no torchvision): the CIFAR recipe of He et al. 2016."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F


def random_crop_flip(images: torch.Tensor, padding: int = 4, flip: bool = True,
                     generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Zero-pad by ``padding`` pixels, crop back to the original size at a random offset, and
    mirror horizontally with probability 1/2; one independent draw per image.

    Args:
        images: (N, C, H, W).
        padding: pixels added on every side before cropping (0: no crop).
        flip: whether to flip.
        generator: torch RNG for the offsets and flips (seeded by the caller).

    Returns:
        (N, C, H, W) tensor of the same dtype.
    """
    n, _, height, width = images.shape
    out = images
    if padding > 0:
        padded = F.pad(images, (padding, padding, padding, padding))
        dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
        dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
        rows = (dy[:, None] + torch.arange(height))[:, :, None]  # (N, H, 1)
        cols = (dx[:, None] + torch.arange(width))[:, None, :]  # (N, 1, W)
        batch = torch.arange(n)[:, None, None]
        # Advanced indexing moves the channel axis last: (N, H, W, C) -> (N, C, H, W).
        out = padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)
    if flip:
        mirror = torch.rand(n, generator=generator) < 0.5
        out = torch.where(mirror[:, None, None, None], out.flip(-1), out)
    return out.contiguous()
