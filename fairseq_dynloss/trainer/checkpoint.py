"""Trainer checkpoints: written atomically with a checksum (``atomic_save``), read with
``weights_only=True`` and refused, naming the file, when empty, unreadable or corrupted."""

from __future__ import annotations

from typing import Any, Callable, Dict

import torch

from fairseq_dynloss.atomic_save import atomic_torch_save
from fairseq_dynloss.file_checks import read_torch_file

from .registry import ConfigError


def save_checkpoint(state: Dict[str, Any], path: str) -> None:
    """``torch.save`` atomically, with the tensors' checksum."""
    atomic_torch_save(state, path, make_folder=True)


def load_checkpoint(path: str, device: torch.device) -> Dict[str, Any]:
    """Load a trainer checkpoint with ``weights_only=True`` (tensors, numbers, strings, dicts).

    Raises:
        ConfigError: an empty, unreadable or corrupted file (naming it), or not a checkpoint.
    """
    state = read_torch_file(path, "checkpoint", ConfigError, map_location=device)
    if not isinstance(state, dict) or not {"student", "epoch", "config"} <= state.keys():
        raise ConfigError(f"checkpoint {path!r} is not a dynloss-train checkpoint (no student, epoch, config)")
    return state


def map_tensors(fn: Callable[[torch.Tensor], torch.Tensor], value: Any) -> Any:
    """``value`` with ``fn`` applied to every tensor inside (nested) dicts, lists and tuples."""
    if isinstance(value, torch.Tensor):
        return fn(value)
    if isinstance(value, dict):
        return {key: map_tensors(fn, item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(map_tensors(fn, item) for item in value)
    return value
