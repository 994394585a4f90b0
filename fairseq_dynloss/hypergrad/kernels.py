"""Kernel choices under which second-order autodiff works on every backend.

* The fused CPU/CUDA attention kernels (flash, memory-efficient) have no double backward;
  the MATH backend of ``scaled_dot_product_attention`` does, with the same results.
* cuDNN RNNs have no double backward; an LSTM student on CUDA needs cuDNN off (this also turns
  cuDNN off for convolutions, which are slower without it, hence an option).

The whole unroll runs under the same choice, so that the forward sweep, the recomputed segments
and the vector-Jacobian products all use the same kernels and see the same numbers.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel


@contextlib.contextmanager
def double_backward_kernels(disable_cudnn: bool = False) -> Iterator[None]:
    """Context: MATH attention, and cuDNN off when ``disable_cudnn``.

    Args:
        disable_cudnn: turn cuDNN off (needed for RNN students on CUDA; no effect on CPU).
    """
    with sdpa_kernel(SDPBackend.MATH):
        if disable_cudnn:
            with torch.backends.cudnn.flags(enabled=False):
                yield
        else:
            yield
