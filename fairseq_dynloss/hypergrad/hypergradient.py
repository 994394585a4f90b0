"""Exact hypergradients through T inner optimiser steps, one step at a time (DESIGN 3.3).

Reverse-mode differentiation through the unroll ``state_{t+1} = step_t(state_t, theta)``
(state = student parameters + optimiser buffers, theta = hyper-parameters):

    d state_T  = (dM/d omega_T, 0)
    for t = T-1 .. t0:
        d theta  += (d step_t / d theta)^T  d state_{t+1}
        d state_t = (d step_t / d state_t)^T d state_{t+1}

Each product is one ``autograd.grad`` call through a recomputation of step t alone (``vjp_step``),
so only one step's graph is alive at a time; what grows with T is the number of stored states.
For plain SGD this is the recursion of the slides: ``d theta -= eta_t d^2L/(d theta d omega_t)
d omega_{t+1}``, ``d omega_t = d omega_{t+1} - eta_t d^2L/d omega_t^2 d omega_{t+1}``.

Memory policies (``checkpoint_every`` = k, ``truncate`` = K):

* ``checkpoint_every=None`` -- keep every state ``state_t0 .. state_{T-1}``: T stored states,
  no recomputation.
* ``checkpoint_every=k`` -- keep ``state_t0, state_{t0+k}, ...``; the backward pass recomputes
  the k states of each segment from its checkpoint (forward steps, replaying the batch and the
  recorded RNG state) and walks back through them: ``O(T/k + k)`` stored states for about one
  extra forward sweep. ``"sqrt"`` picks ``k = ceil(sqrt(T - t0))``.
* ``truncate=K`` -- the hypergradient flows through the last K steps only: ``t0 = T - K``, and
  the result equals a full-graph unroll in which ``state_{T-K}`` (parameters *and* optimiser
  buffers) is detached and theta enters only steps ``T-K .. T-1``. ``K >= T`` means no truncation.

Before every step t >= t0 the CPU RNG state and that of every CUDA device holding a parameter or
hyper-parameter are recorded, and restored before each recomputation of step t, so dropout
masks are identical; batches are replayed from ``batches[t]``. After the call the generators are
left as T plain steps and the outer loss would leave them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from .kernels import double_backward_kernels
from .optimizers import SGD, InnerOptimizer, OptState, Params
from .rng import RngState, capture_rng, cuda_device_indices, restore_rng
from .schedule import check_learning_rate
from .step import InnerLoss, StepState, forward_step, param_grads, vjp_step

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
    """``(t0, k)``: the first differentiated step and the checkpoint spacing (1 = keep all)."""
    if truncate is not None:
        if isinstance(truncate, bool) or not isinstance(truncate, int) or truncate <= 0:
            raise ValueError(
                f"truncate must be a positive int (differentiate through the last K steps) or None, "
                f"got {truncate!r}"
            )
    t0 = max(0, num_steps - truncate) if truncate is not None else 0
    if checkpoint_every is None:
        return t0, 1
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
    state = StepState(dict(params), start_buffers).detached()
    fixed_hparams = {k: v.detach() for k, v in hparams.items()}
    cuda_devices = cuda_device_indices(list(params.values()) + list(hparams.values()))

    with double_backward_kernels(disable_cudnn):
        # Forward sweep: plain training steps, storing the checkpoints and per-step RNG states.
        checkpoints: Dict[int, StepState] = {}
        rng_states: Dict[int, RngState] = {}
        inner_losses: List[Tensor] = []
        for t, batch in enumerate(batches):
            if t >= t0:
                rng = capture_rng(cuda_devices)
                previous = rng_states.get(t - 1)
                # Without dropout every step sees the same state: share one copy (5 KB each).
                rng_states[t] = previous if previous is not None and previous.equals(rng) else rng
                if (t - t0) % every == 0:
                    checkpoints[t] = state
            state, loss = forward_step(inner_loss, optimizer, state, fixed_hparams, batch, t)
            inner_losses.append(loss)
        outer, outer_grads = _outer_gradient(outer_loss, state)
        rng_after = capture_rng(cuda_devices)

        # Backward sweep, segment by segment from the last: recompute the segment's states from
        # its checkpoint, then apply the transposed step Jacobians from its last step to its first.
        # The outer loss does not see the optimiser buffers: their adjoint at step T is zero.
        adjoint = state.like([torch.zeros_like(v) for v in state.flat()])
        adjoint.params = outer_grads
        leaves = {k: v.detach().requires_grad_(True) for k, v in hparams.items()}
        grads = [torch.zeros_like(v) for v in leaves.values()]
        for start in reversed(range(t0, num_steps, every)):
            end = min(start + every, num_steps)
            segment = [checkpoints.pop(start)]
            for t in range(start, end - 1):
                restore_rng(rng_states[t])
                segment.append(forward_step(inner_loss, optimizer, segment[-1], fixed_hparams, batches[t], t)[0])
            for t in reversed(range(start, end)):
                restore_rng(rng_states.pop(t))
                adjoint, step_grads = vjp_step(inner_loss, optimizer, segment.pop(), leaves, batches[t], t, adjoint)
                for total, g in zip(grads, step_grads):
                    total.add_(g)
        restore_rng(rng_after)

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
        params=dict(state.params),
        opt_state=state.opt_state,
        inner_losses=torch.stack(inner_losses),
        finite=not nonfinite,
        nonfinite=nonfinite,
    )
