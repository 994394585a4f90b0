"""Capture and restore the random-number state that a segment of inner steps consumes.

A recomputed segment of steps (checkpointing) must draw the same dropout masks as the forward
sweep did. The state of the CPU generator and of the generator of every CUDA device the
parameters live on is recorded when the forward sweep reaches the segment and restored before
its recomputation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Tuple

import torch


@dataclass(frozen=True)
class RngState:
    """Generator states: the CPU one, and ``(device index, state)`` for each CUDA device."""

    cpu: torch.Tensor
    cuda: Tuple[Tuple[int, torch.Tensor], ...]


def cuda_device_indices(tensors: Iterable[torch.Tensor]) -> Tuple[int, ...]:
    """The sorted indices of the CUDA devices that ``tensors`` live on."""
    return tuple(sorted({t.device.index or 0 for t in tensors if t.device.type == "cuda"}))


def capture_rng(cuda_devices: Tuple[int, ...]) -> RngState:
    """The current state of the CPU generator and of the given CUDA devices' generators."""
    return RngState(
        cpu=torch.get_rng_state(),
        cuda=tuple((d, torch.cuda.get_rng_state(d)) for d in cuda_devices),
    )


def restore_rng(state: RngState) -> None:
    """Sets the generators back to ``state``."""
    torch.set_rng_state(state.cpu)
    for device, cuda_state in state.cuda:
        torch.cuda.set_rng_state(cuda_state, device)
