"""Capture and restore the random-number state that one inner step consumes.

A recomputed step (checkpointing, or the vector-Jacobian product of a step) must draw the same
dropout masks as the forward sweep did. The state of the CPU generator and of the generator of
every CUDA device the parameters live on is recorded before each step and restored before
each recomputation.
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

    def equals(self, other: "RngState") -> bool:
        """Whether both hold the same generator states (a step that drew no random numbers)."""
        return torch.equal(self.cpu, other.cpu) and len(self.cuda) == len(other.cuda) and all(
            d == e and torch.equal(s, o) for (d, s), (e, o) in zip(self.cuda, other.cuda)
        )


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
