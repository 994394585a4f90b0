"""Process group and device set-up; one process per device under ``torchrun``."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class Context:
    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device: str) -> Context:
    """Pick the device (``auto``: CUDA when available) and join the ``torchrun`` group (NCCL on
    CUDA, gloo on CPU) if ``WORLD_SIZE`` > 1."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise ValueError(f"device={device!r}; expected auto, cpu, cuda or cuda:N")
    # torch.cuda.set_device refuses a CUDA device without an index: a bare "cuda" means this
    # process's local device (cuda:0 in a single process, cuda:LOCAL_RANK under torchrun).
    if device == "cuda":
        device = f"cuda:{local_rank}"
    torch_device = torch.device(device)
    if torch_device.type == "cuda":
        torch.cuda.set_device(torch_device)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch_device.type == "cuda" else "gloo")
    return Context(rank, world_size, torch_device)


def all_reduce_sum(tensor: torch.Tensor, context: Context) -> torch.Tensor:
    if context.world_size > 1:
        dist.all_reduce(tensor)
    return tensor


def teardown(context: Context) -> None:
    if context.world_size > 1 and dist.is_initialized():
        dist.destroy_process_group()
