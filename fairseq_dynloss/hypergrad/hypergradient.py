"""Exact hypergradients through T inner optimiser steps, segment by segment (docs/design.md §3.3).

Reverse-mode differentiation through the unroll ``state_{t+1} = step_t(state_t, theta)``
(state = student parameters + optimiser buffers, theta = hyper-parameters). The steps
``t0 .. T-1`` are cut into segments of k consecutive steps; for a segment ``[s, e)``, with
``d x`` the adjoint ``d outer / d x`` and ``J`` a Jacobian of the segment's map:

    d theta  += J_theta(state_e)^T   d state_e
    d state_s = J_state_s(state_e)^T d state_e

both from one ``autograd.grad`` call through the segment's graph (the steps recorded with
``create_graph=True``, ``step.differentiable_step``), taken from the last segment to the first.
For plain SGD and k = 1 this is the recursion of the slides: ``d theta -= eta_t d^2L/(d theta
d omega_t) d omega_{t+1}``, ``d omega_t = d omega_{t+1} - eta_t d^2L/d omega_t^2 d omega_{t+1}``.

Memory policies (``checkpoint_every`` = k, ``truncate`` = K):

* ``checkpoint_every=None`` -- keep all: one segment, recorded during the forward sweep and
  differentiated once. No recomputation; the cost and memory of a naive full-graph unroll (the
  graph of every step: activations, and the state tensors the graph saves).
* ``checkpoint_every=k`` -- the forward sweep runs plain training steps and keeps the state at
  the start of every segment (parameters and buffers, not the graph), except the last segment,
  whose graph it records. The backward pass rebuilds each earlier segment's graph from its
  checkpoint (replaying the batches and the recorded RNG state) and differentiates it: ``O(T/k)``
  stored states plus one segment's graph, for one plain training step more per step outside the
  last segment (each step's graph is built once either way). ``"sqrt"`` picks
  ``k = ceil(sqrt(T - t0))``; ``k = 1`` stores every state and the graph of one step only.
* ``truncate=K`` -- the hypergradient flows through the last K steps only: ``t0 = T - K``, and
  the result equals a full-graph unroll in which ``state_{T-K}`` (parameters *and* optimiser
  buffers) is detached and theta enters only steps ``T-K .. T-1``. ``K >= T`` means no truncation.

Before each recomputed segment the CPU RNG state and that of every CUDA device holding a
parameter or hyper-parameter are restored to what they were when the forward sweep reached it,
so dropout masks are identical; batches are replayed from ``batches[t]``. After the call the
generators are left as T plain steps and the outer loss would leave them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from .flat import FLAT, FlatLayout
from .kernels import double_backward_kernels
from .optimizers import SGD, InnerOptimizer, OptState, Params
from .rng import RngState, capture_rng, cuda_device_indices, restore_rng
from .schedule import check_learning_rate
from .step import InnerLoss, StepState, differentiable_step, forward_step, param_grads

OuterLoss = Callable[[Dict[str, Tensor]], Tensor]


class NonFiniteHypergradientError(FloatingPointError):
    """The outer loss or a hypergradient is NaN or infinite (raised on request only)."""


@dataclass
class HypergradientResult:
    """What ``hypergradient`` returns.

    Attributes:
        outer_loss: 0-d tensor, ``outer_loss(omega_T)`` (detached).
        grads: ``{name: Tensor}`` d outer_loss / d hparams, same keys and shapes as hparams.
        params: ``{name: Tensor}`` omega_T, detached.
        opt_state: the inner optimiser's buffers after step T, detached.
        inner_losses: (T,) the inner loss at each step of the forward sweep.
        finite: False when ``outer_loss`` or any hypergradient has a NaN or inf entry; the caller
            decides whether to skip the update.
        nonfinite: names of the non-finite hypergradients (and ``"outer_loss"``), empty if finite.
    """

    outer_loss: Tensor
    grads: Dict[str, Tensor]
    params: Dict[str, Tensor]
    opt_state: OptState
    inner_losses: Tensor
    finite: bool
    nonfinite: Tuple[str, ...]


def _check_tensor_dict(name: str, tensors: Any, allow_empty: bool) -> None:
    if not isinstance(tensors, dict):
        raise TypeError(f"{name} must be a dict of str -> Tensor, got {type(tensors).__name__}")
    if not tensors and not allow_empty:
        raise ValueError(f"{name} is empty; expected at least one tensor to differentiate")
    for key, value in tensors.items():
        if not isinstance(value, Tensor):
            raise TypeError(f"{name}['{key}'] must be a Tensor, got {type(value).__name__}")
        if not value.is_floating_point():
            raise TypeError(f"{name}['{key}'] has dtype {value.dtype}; expected a floating-point tensor")


def _resolve_policy(
    num_steps: int, checkpoint_every: Union[int, str, None], truncate: Optional[int]
) -> Tuple[int, int]:
    """``(t0, k)``: the first differentiated step and the segment length (keep all: ``T - t0``)."""
    if truncate is not None:
        if isinstance(truncate, bool) or not isinstance(truncate, int) or truncate <= 0:
            raise ValueError(
                f"truncate must be a positive int (differentiate through the last K steps) or None, "
                f"got {truncate!r}"
            )
    t0 = max(0, num_steps - truncate) if truncate is not None else 0
    if checkpoint_every is None:
        return t0, num_steps - t0
    if checkpoint_every == "sqrt":
        return t0, max(1, math.ceil(math.sqrt(num_steps - t0)))
    if isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, int) or checkpoint_every <= 0:
        raise ValueError(
            f"checkpoint_every must be a positive int (store the state every k steps), 'sqrt' or "
            f"None (store every state), got {checkpoint_every!r}"
        )
    return t0, checkpoint_every


def _check_inputs(
    params: Dict[str, Tensor],
    hparams: Dict[str, Tensor],
    batches: List[Any],
    optimizer: InnerOptimizer,
    opt_state: Optional[OptState],
) -> OptState:
    """Validates the arguments before any work; returns the initial optimiser buffers."""
    _check_tensor_dict("params", params, allow_empty=False)
    _check_tensor_dict("hparams", hparams, allow_empty=False)
    shared = sorted(set(params) & set(hparams))
    if shared:
        raise ValueError(
            f"keys {shared} are in both params and hparams; expected disjoint names (a tensor is "
            "either a student parameter, updated by the inner optimiser, or a hyper-parameter)"
        )
    if not isinstance(optimizer, InnerOptimizer):
        raise TypeError(f"optimizer must be an InnerOptimizer (SGD, Adam, AdamW), got {type(optimizer).__name__}")
    if not batches:
        raise ValueError("batches is empty; expected a sequence of T >= 1 batches, one per inner step")
    check_learning_rate(optimizer.lr, hparams, len(batches))
    if opt_state is None:
        return optimizer.init_state(params)
    expected = {name: sorted(params) for name in optimizer.buffer_names}
    got = {name: sorted(buffers) for name, buffers in opt_state.items()}
    if got != expected:
        raise ValueError(f"opt_state has buffers {got}; expected {expected} for {type(optimizer).__name__}")
    return opt_state


def _outer_gradient(outer_loss: OuterLoss, state: StepState) -> Tuple[Tensor, Params]:
    """``(outer_loss(omega_T), d outer_loss / d omega_T)``."""
    final = state.detached(requires_grad=True)
    with torch.enable_grad():
        outer = outer_loss(final.params)
        if not isinstance(outer, Tensor) or outer.dim() != 0:
            raise ValueError(f"outer_loss must return a scalar tensor, got {outer!r:.80}")
        if not outer.requires_grad:
            raise ValueError("outer_loss does not depend on the student parameters it was given")
        return outer.detach(), param_grads(outer, final.params, create_graph=False)


def _segment_vjp(outputs: List[Tensor], adjoint: List[Optional[Tensor]], inputs: List[Tensor]) -> List[Tensor]:
    """``(d outputs / d inputs)^T adjoint`` through the recorded graph, which it frees.

    Args:
        outputs: the segment's last state, ``StepState.flat`` order, attached to the graph.
        adjoint: ``d outer / d outputs``, same order; None where it is zero.
        inputs: tensors the graph was built from (the segment's first state, theta).

    Returns:
        One tensor per input (zeros where the outputs do not depend on it).
    """
    # An output that does not depend on any input, or whose adjoint is zero, contributes
    # nothing; autograd.grad refuses outputs without a graph, so they are left out.
    pairs = [(out, adj) for out, adj in zip(outputs, adjoint) if adj is not None and out.requires_grad]
    if not pairs:
        return [torch.zeros_like(x) for x in inputs]
    with torch.enable_grad():
        return list(
            torch.autograd.grad(
                [out for out, _ in pairs],
                inputs,
                grad_outputs=[adj for _, adj in pairs],
                allow_unused=True,
                materialize_grads=True,
            )
        )


def hypergradient(
    inner_loss: InnerLoss,
    outer_loss: OuterLoss,
    params: Dict[str, Tensor],
    hparams: Dict[str, Tensor],
    batches: Sequence[Any],
    optimizer: InnerOptimizer = SGD(lr=0.1, momentum=0.0),
    checkpoint_every: Union[int, str, None] = None,
    truncate: Optional[int] = None,
    opt_state: Optional[OptState] = None,
    disable_cudnn: bool = False,
    raise_on_nonfinite: bool = False,
) -> HypergradientResult:
    """d outer_loss(omega_T) / d hparams through T functional optimiser steps.

    Args:
        inner_loss: ``(params, hparams, batch, step) -> 0-d Tensor``, the training loss at step t;
            must be a pure function of its arguments (plus the RNG, which is replayed).
        outer_loss: ``(params) -> 0-d Tensor``, the objective to *minimise* at omega_T.
        params: ``{name: Tensor}`` omega_0; not modified.
        hparams: ``{name: Tensor}`` theta; ``requires_grad`` is not needed, not modified.
        batches: T batches, ``batches[t]`` is passed to step t (replayed on recomputation).
        optimizer: the inner optimiser (``SGD``, ``Adam``, ``AdamW``).
        checkpoint_every: memory policy, see the module docstring.
        truncate: differentiate through the last K steps only, see the module docstring.
        opt_state: initial optimiser buffers (``optimizer.init_state`` structure, e.g. a real
            student's momentum); zeros when None. Adam's bias correction counts from step 0.
        disable_cudnn: run with cuDNN off (RNN students on CUDA; see ``kernels.py``).
        raise_on_nonfinite: raise ``NonFiniteHypergradientError`` instead of returning a result
            with ``finite=False``.

    Returns:
        A ``HypergradientResult``.

    Raises:
        ValueError, TypeError, KeyError: bad arguments (named in the message).
        NonFiniteHypergradientError: only with ``raise_on_nonfinite``.
    """
    batches = list(batches)
    start_buffers = _check_inputs(params, hparams, batches, optimizer, opt_state)
    num_steps = len(batches)
    t0, every = _resolve_policy(num_steps, checkpoint_every, truncate)
    starts = range(t0, num_steps, every)
    last_start = starts[-1]
    layout = FlatLayout.of(params, optimizer.elementwise)
    if layout is not None:  # one tensor per state entry: see flat.py
        user_inner, user_outer = inner_loss, outer_loss
        inner_loss = lambda p, h, batch, t: user_inner(layout.views(p[FLAT]), h, batch, t)  # noqa: E731
        outer_loss = lambda p: user_outer(layout.views(p[FLAT]))  # noqa: E731
        state = StepState(*layout.pack(params, start_buffers)).detached()
    else:
        state = StepState(dict(params), start_buffers).detached()
    fixed_hparams = {k: v.detach() for k, v in hparams.items()}
    leaves = {k: v.detach().requires_grad_(True) for k, v in hparams.items()}
    cuda_devices = cuda_device_indices(list(params.values()) + list(hparams.values()))

    with double_backward_kernels(disable_cudnn):
        # Forward sweep: plain steps up to the last segment, keeping each segment's first state
        # and RNG state; the last segment is recorded with its graph, which the backward pass
        # needs first (keep-all: the whole unroll is that segment).
        checkpoints: Dict[int, Tuple[StepState, RngState]] = {}
        inner_losses: List[Tensor] = []
        for t, batch in enumerate(batches):
            if t in starts and t < last_start:
                checkpoints[t] = (state, capture_rng(cuda_devices))
            if t == last_start:
                state = last_inputs = state.detached(requires_grad=True)
            if t < last_start:
                state, loss = forward_step(inner_loss, optimizer, state, fixed_hparams, batch, t)
            else:
                state, loss = differentiable_step(inner_loss, optimizer, state, leaves, batch, t)
            inner_losses.append(loss)
        outer, outer_grads = _outer_gradient(outer_loss, state)
        rng_after = capture_rng(cuda_devices)

        # Backward sweep, segment by segment from the last: rebuild the segment's graph from its
        # checkpoint (the last one is already built), then one vector-Jacobian product through it.
        # The outer loss does not see the optimiser buffers: their adjoint at step T is zero
        # (None: left out of the product).
        adjoint: List[Optional[Tensor]] = list(outer_grads.values()) + [None] * (len(state.flat()) - len(outer_grads))
        grads = [torch.zeros_like(v) for v in leaves.values()]
        for start in reversed(starts):
            if start == last_start:
                inputs, outputs = last_inputs, state
            else:
                checkpoint, rng = checkpoints.pop(start)
                restore_rng(rng)
                inputs = outputs = checkpoint.detached(requires_grad=True)
                for t in range(start, min(start + every, num_steps)):
                    outputs, _ = differentiable_step(inner_loss, optimizer, outputs, leaves, batches[t], t)
            # The first segment's input adjoint (d state_t0) is not needed: leave it out.
            wrt = (inputs.flat() if start > t0 else []) + list(leaves.values())
            vjps = _segment_vjp(outputs.flat(), adjoint, wrt)
            for total, g in zip(grads, vjps[len(wrt) - len(leaves):]):
                total.add_(g)
            adjoint = list(vjps[: len(wrt) - len(leaves)])
        if last_start > t0:  # segments were recomputed, drawing random numbers again
            restore_rng(rng_after)

    final = state.detached()
    if layout is not None:
        final = StepState(*layout.unpack(final.params, final.opt_state))
    grads_by_name = dict(zip(hparams, grads))
    nonfinite = (() if torch.isfinite(outer) else ("outer_loss",)) + tuple(
        k for k, g in grads_by_name.items() if not torch.isfinite(g).all()
    )
    if nonfinite and raise_on_nonfinite:
        raise NonFiniteHypergradientError(
            f"non-finite values in {list(nonfinite)} after {num_steps} inner steps "
            f"(outer loss {outer.item():.4g}); expected finite hypergradients"
        )
    return HypergradientResult(
        outer_loss=outer,
        grads=grads_by_name,
        params=final.params,
        opt_state=final.opt_state,
        inner_losses=torch.stack(inner_losses),
        finite=not nonfinite,
        nonfinite=nonfinite,
    )
