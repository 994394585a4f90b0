"""Warnings for an ALA policy that stopped exploring or a loss parameter stuck at its bounds.

Both are how ALA failed in this project's runs (README, docs/investigation.md): the policy became
nearly deterministic and drove every controlled Phi entry to the clamp. ``ALAHealth.check`` is
called once per controller step and returns each warning once, when its condition starts (and
again only after the condition cleared in between), so the log is not flooded.
"""

from __future__ import annotations

import math
from typing import List, Optional

import torch

UNIFORM_ENTROPY = math.log(3.0)  # three actions: -beta, 0, +beta


class ALAHealth:
    """Edge-triggered warnings about an ALA controller.

    Args:
        entropy_floor: mean per-element policy entropy (nats) below which the policy counts as
            collapsed (default 0.1, about 9% of the uniform ln 3: one action has > 98%).
        tolerance: how close to a bound (relative to the range high - low) counts as at it.
    """

    def __init__(self, entropy_floor: float = 0.1, tolerance: float = 1e-6):
        if not 0.0 < entropy_floor < UNIFORM_ENTROPY:
            raise ValueError(f"entropy_floor={entropy_floor}; expected in (0, ln 3 = {UNIFORM_ENTROPY:.4f})")
        self.entropy_floor = entropy_floor
        self.tolerance = tolerance
        self._active = {"entropy": False, "clamp": False}

    def check(self, step: int, entropy: Optional[float] = None, values: Optional[torch.Tensor] = None,
              low: Optional[float] = None, high: Optional[float] = None) -> List[str]:
        """New warnings after controller step ``step``; a condition not given is not checked
        (and keeps its state).

        Args:
            step: the controller step or student update (for the message).
            entropy: mean per-element entropy of the policy's action distribution (nats).
            values: (P,) the controlled entries after the step, in the clamp's coordinates.
            low, high: the clamp; a missing bound is not checked.
        """
        warnings = []
        if entropy is not None:
            collapsed = entropy < self.entropy_floor
            if collapsed and not self._active["entropy"]:
                warnings.append(f"ALA: the policy's entropy collapsed to {entropy:.3g} nats at step {step} "
                                f"(uniform: {UNIFORM_ENTROPY:.3f}); it now takes nearly one action everywhere")
            self._active["entropy"] = collapsed
        if values is not None and values.numel() and (low is not None or high is not None):
            span = (high - low) if (low is not None and high is not None) else 1.0
            near = lambda bound: (values - bound).abs() <= self.tolerance * max(abs(span), 1e-12)
            at_low = near(low) if low is not None else torch.zeros_like(values, dtype=torch.bool)
            at_high = near(high) if high is not None else torch.zeros_like(values, dtype=torch.bool)
            pinned = bool((at_low | at_high).all())
            if pinned and not self._active["clamp"]:
                warnings.append(f"ALA: all {values.numel()} controlled entries sit at the clamp "
                                f"[{low}, {high}] at step {step} ({int(at_low.sum())} at the low bound, "
                                f"{int(at_high.sum())} at the high one); the controller can no longer move them")
            self._active["clamp"] = pinned
        return warnings
