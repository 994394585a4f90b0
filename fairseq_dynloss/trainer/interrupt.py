"""Ctrl-C (SIGINT) and SIGTERM as a request to stop at the next update boundary.

The training loop polls :attr:`StopRequest.requested` after every update; when it is set the loop
writes ``checkpoint_last.pt`` with the position inside the epoch (batches done, RNG states, the
epoch's losses so far) and raises :class:`TrainingInterrupted`, so that ``resume=true`` replays the
rest of the epoch exactly as the uninterrupted run would have. A second Ctrl-C stops at once
(Python's ``KeyboardInterrupt``), without a checkpoint.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Dict, List, Optional

import torch

log = logging.getLogger("dynloss-train")

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(Exception):
    """Raised by the trainer after it saved ``checkpoint_last.pt`` on SIGINT / SIGTERM.

    Attributes:
        signum: the signal received; ``128 + signum`` is the shell's exit status for it.
    """

    def __init__(self, signum: int, checkpoint: str):
        self.signum = signum
        self.checkpoint = checkpoint
        super().__init__(f"interrupted ({signal.Signals(signum).name}); {checkpoint} saved; "
                         "resume with resume=true")


class StopRequest:
    """A context manager that turns SIGINT / SIGTERM into ``requested`` (and restores the previous
    handlers on exit). Disabled (``enabled=False``, or outside the main thread, where Python cannot
    install handlers) it leaves the default behaviour untouched and ``requested`` stays None."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.requested: Optional[int] = None  # the signal number once one arrived
        # Until the loop arms it (set-up, an L2T teacher's phase (a), which has its own
        # checkpoint), a signal stops at once as Python's default would.
        self.armed = False
        self._previous: Dict[int, object] = {}

    def __enter__(self) -> "StopRequest":
        if self.enabled and threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        self._restore()

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def _handle(self, signum: int, frame) -> None:
        if not self.armed or self.requested is not None:  # not in the loop, or asked twice
            self._restore()
            raise KeyboardInterrupt
        self.requested = signum
        log.warning("%s received: saving checkpoint_last.pt after this update "
                    "(press Ctrl-C again to stop at once, without it)", signal.Signals(signum).name)


def epoch_position(batches_done: int, batch_losses: List[torch.Tensor], local_sizes: List[int],
                   seen: int, augment_rng: torch.Generator, device: torch.device, **extra) -> Dict:
    """What a checkpoint written inside an epoch needs to replay the rest of it exactly.

    Args:
        batches_done: updates of this epoch already taken.
        batch_losses: their losses, 0-d tensors (kept, not summed: the epoch's loss is then the
            same sum in the same order as in an uninterrupted run).
        local_sizes: their local batch sizes.
        seen: global examples of the epoch so far.
        augment_rng: the epoch's augmentation generator.
        device: the training device (its RNG state is kept too on CUDA).
        **extra: anything else the loop restores (numbers).
    """
    position = {
        "batches": batches_done, "seen": seen, "local_sizes": list(local_sizes),
        "batch_losses": torch.stack(batch_losses).cpu() if batch_losses else torch.zeros(0),
        "rng": torch.get_rng_state(), "augment_rng": augment_rng.get_state(), **extra,
    }
    if device.type == "cuda":
        position["cuda_rng"] = torch.cuda.get_rng_state(device)
    return position


def restore_position(position: Dict, augment_rng: torch.Generator, device: torch.device):
    """Set the RNGs as ``position`` recorded them; returns (batches done, batch losses on
    ``device``, local sizes, seen)."""
    torch.set_rng_state(position["rng"].cpu())
    augment_rng.set_state(position["augment_rng"].cpu())
    if "cuda_rng" in position:
        torch.cuda.set_rng_state(position["cuda_rng"].cpu(), device)
    losses = list(position["batch_losses"].to(device).unbind())
    return position["batches"], losses, list(position["local_sizes"]), position["seen"]
