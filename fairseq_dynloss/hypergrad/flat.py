"""A parameter dict laid end to end in one 1-D tensor, for elementwise inner optimisers.

A small student has few, small tensors (the MNIST-1D MLP: 6 tensors, 15k numbers), so an unroll
step spends its time on per-tensor Python and autograd overhead, not arithmetic: Adam's update
is ~15 operations per tensor, each recorded in the graph and differentiated again in the
vector-Jacobian product. An elementwise optimiser (SGD, Adam, AdamW: the same formula on every
number) gives the same numbers on the concatenation of the tensors (to round-off: a number may
fall in a kernel's vectorised body in one layout and its scalar tail in the other), with one
operation per formula term instead of one per tensor. The student still sees a dict of tensors:
``views`` splits the flat vector into views of the original shapes, so the gradient with respect
to the flat vector is the concatenation of the per-tensor gradients (one ``cat`` in the graph).
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor

FLAT = "flat"  # the one key of a flattened parameter (or buffer) dict


class FlatLayout:
    """Names, shapes and sizes of a ``{name: Tensor}`` dict in a fixed order.

    Args:
        tensors: the template (omega_0); only names, shapes, dtype and device are read.
    """

    def __init__(self, tensors: Dict[str, Tensor]):
        self.names: List[str] = list(tensors)
        self.shapes: List[torch.Size] = [t.shape for t in tensors.values()]
        self.sizes: List[int] = [t.numel() for t in tensors.values()]

    @staticmethod
    def of(params: Dict[str, Tensor], elementwise: bool) -> Optional["FlatLayout"]:
        """The layout of ``params`` when flattening pays and is exact, else None.

        Args:
            params: the student parameters.
            elementwise: whether the inner optimiser applies one formula to every number
                independently (``InnerOptimizer.elementwise``); a per-tensor rule (a norm, a
                trust ratio) would change on the concatenation.

        Returns:
            None for one tensor (nothing to gain), mixed dtypes or devices (one tensor cannot
            hold them), or a non-elementwise optimiser.
        """
        if not elementwise or len(params) < 2:
            return None
        first = next(iter(params.values()))
        if any(t.dtype != first.dtype or t.device != first.device for t in params.values()):
            return None
        return FlatLayout(params)

    def flatten(self, tensors: Dict[str, Tensor]) -> Tensor:
        """(sum of sizes,) the tensors of ``tensors`` (same names) concatenated, a new tensor."""
        return torch.cat([tensors[name].reshape(-1) for name in self.names])

    def views(self, flat: Tensor) -> Dict[str, Tensor]:
        """``{name: Tensor}`` views of ``flat`` in the original shapes (differentiable)."""
        return {name: piece.view(shape) for name, piece, shape in zip(self.names, flat.split(self.sizes), self.shapes)}

    def pack(self, params: Dict[str, Tensor], opt_state: Dict[str, Dict[str, Tensor]]
             ) -> Tuple[Dict[str, Tensor], Dict[str, Dict[str, Tensor]]]:
        """``(params, opt_state)`` with every per-name dict replaced by ``{FLAT: flat tensor}``."""
        return {FLAT: self.flatten(params)}, {name: {FLAT: self.flatten(b)} for name, b in opt_state.items()}

    def unpack(self, params: Dict[str, Tensor], opt_state: Dict[str, Dict[str, Tensor]]
               ) -> Tuple[Dict[str, Tensor], Dict[str, Dict[str, Tensor]]]:
        """The inverse of ``pack`` (views of the flat tensors)."""
        return self.views(params[FLAT]), {name: self.views(b[FLAT]) for name, b in opt_state.items()}
