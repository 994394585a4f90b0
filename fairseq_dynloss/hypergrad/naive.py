"""The reference: a naive full-graph unroll (``create_graph=True`` through all T steps).

It keeps the autograd graph of every step alive (memory grows with T x activations) and takes
one ``autograd.grad`` of the outer loss at the end. ``hypergradient`` must equal it to round-off;
the tests and ``scripts/bench_hypergrad.py`` use it as the baseline.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

import torch
from torch import Tensor

from .hypergradient import HypergradientResult, OuterLoss
from .kernels import double_backward_kernels
from .optimizers import SGD, InnerOptimizer, OptState
from .step import InnerLoss, StepState, differentiable_step, forward_step


def naive_hypergradient(
    inner_loss: InnerLoss,
    outer_loss: OuterLoss,
    params: Dict[str, Tensor],
    hparams: Dict[str, Tensor],
    batches: Sequence[Any],
    optimizer: InnerOptimizer = SGD(lr=0.1, momentum=0.0),
    truncate: Optional[int] = None,
    opt_state: Optional[OptState] = None,
    disable_cudnn: bool = False,
) -> HypergradientResult:
    """Same contract as ``hypergradient`` (without memory policies), by brute force.

    ``truncate=K``: the state after step T-K-1 is detached, and steps before T-K see detached
    hyper-parameters, so theta is differentiated through the last K steps only.
    """
    num_steps = len(batches)
    t0 = max(0, num_steps - truncate) if truncate is not None else 0
    leaves = {k: v.detach().requires_grad_(True) for k, v in hparams.items()}
    fixed = {k: v.detach() for k, v in hparams.items()}
    buffers = optimizer.init_state(params) if opt_state is None else opt_state
    state = StepState(dict(params), buffers).detached()
    inner_losses = []
    with double_backward_kernels(disable_cudnn), torch.enable_grad():
        for t, batch in enumerate(batches):
            if t < t0:
                state, loss = forward_step(inner_loss, optimizer, state, fixed, batch, t)
            else:
                if t == t0:
                    state = state.detached(requires_grad=True)
                state, loss = differentiable_step(inner_loss, optimizer, state, leaves, batch, t)
            inner_losses.append(loss)
        outer = outer_loss(state.params)
        grads = torch.autograd.grad(outer, list(leaves.values()), allow_unused=True, materialize_grads=True)
    nonfinite = (() if torch.isfinite(outer) else ("outer_loss",)) + tuple(
        k for k, g in zip(hparams, grads) if not torch.isfinite(g).all()
    )
    return HypergradientResult(
        outer_loss=outer.detach(),
        grads=dict(zip(hparams, grads)),
        params=state.detached().params,
        opt_state=state.detached().opt_state,
        inner_losses=torch.stack(inner_losses),
        finite=not nonfinite,
        nonfinite=nonfinite,
    )
