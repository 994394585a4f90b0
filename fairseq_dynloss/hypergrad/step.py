"""One inner optimiser step, run plainly or recorded in the autograd graph.

The state of the unroll at step t is ``(omega_t, buffers_t)``: the student parameters and the
inner optimiser's buffers. One step maps it to the state at t + 1:

    g_t            = d inner_loss(omega_t, theta, batch_t, t) / d omega_t
    state_{t+1}    = optimizer.update(state_t, g_t)

``forward_step`` computes it without building a graph beyond the one gradient (the cost of a
plain training step). ``differentiable_step`` records it in the autograd graph (the gradient by
``create_graph=True``), so that a chain of such steps can be differentiated by one
``autograd.grad`` call: the transposed Jacobians of the whole chain applied to the adjoint of its
last state (``hypergradient.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Tuple

import torch
from torch import Tensor

from .optimizers import InnerOptimizer, OptState, Params

InnerLoss = Callable[[Dict[str, Tensor], Dict[str, Tensor], Any, int], Tensor]


@dataclass
class StepState:
    """The state of the unroll between two steps.

    Attributes:
        params: ``{name: Tensor}`` student parameters omega_t.
        opt_state: ``{buffer: {name: Tensor}}`` inner optimiser buffers (empty for plain SGD).
    """

    params: Params
    opt_state: OptState

    def flat(self) -> List[Tensor]:
        """The tensors in a fixed order: parameters, then each buffer's tensors."""
        tensors = list(self.params.values())
        for buffers in self.opt_state.values():
            tensors.extend(buffers.values())
        return tensors

    def like(self, tensors: List[Tensor]) -> "StepState":
        """A state with the structure of ``self`` holding ``tensors`` (in ``flat`` order)."""
        it = iter(tensors)
        params = {k: next(it) for k in self.params}
        opt_state = {name: {k: next(it) for k in buffers} for name, buffers in self.opt_state.items()}
        return StepState(params, opt_state)

    def detached(self, requires_grad: bool = False) -> "StepState":
        """Detached copies (sharing storage), optionally as fresh autograd leaves."""
        return self.like([t.detach().requires_grad_(requires_grad) for t in self.flat()])


def param_grads(loss: Tensor, params: Params, create_graph: bool) -> Params:
    """``d loss / d params``; zeros for parameters the loss does not use."""
    grads = torch.autograd.grad(
        loss, list(params.values()), create_graph=create_graph, allow_unused=True, materialize_grads=True
    )
    return dict(zip(params, grads))


def inner_gradient(
    inner_loss: InnerLoss, params: Params, hparams: Dict[str, Tensor], batch: Any, step: int, create_graph: bool
) -> Tuple[Tensor, Params]:
    """``(inner_loss(params, hparams, batch, step), its gradient w.r.t. params)``.

    The gradient is zero for parameters the loss does not use.

    Raises:
        TypeError: the loss is not a tensor.
        ValueError: the loss is not a scalar, or depends on none of the parameters.
    """
    loss = inner_loss(params, hparams, batch, step)
    if not isinstance(loss, Tensor):
        raise TypeError(f"inner_loss must return a scalar tensor, got {type(loss).__name__} at step {step}")
    if loss.dim() != 0:
        raise ValueError(f"inner_loss must return a scalar tensor, got shape {tuple(loss.shape)} at step {step}")
    # requires_grad alone does not tell: the hyper-parameters may require grad too.
    grads = (
        torch.autograd.grad(loss, list(params.values()), create_graph=create_graph, allow_unused=True)
        if loss.requires_grad
        else (None,) * len(params)
    )
    if all(g is None for g in grads):
        raise ValueError(
            f"inner_loss at step {step} does not depend on the student parameters it was given; "
            "expected a loss computed from params (e.g. through functional_call)"
        )
    return loss, {k: torch.zeros_like(p) if g is None else g for (k, p), g in zip(params.items(), grads)}


def forward_step(
    inner_loss: InnerLoss,
    optimizer: InnerOptimizer,
    state: StepState,
    hparams: Dict[str, Tensor],
    batch: Any,
    step: int,
) -> Tuple[StepState, Tensor]:
    """One step without a second-order graph.

    Args:
        hparams: detached hyper-parameters (no graph is built through them).

    Returns:
        ``(state_{t+1}, inner loss at step t)``, both detached.
    """
    current = state.detached(requires_grad=True)
    with torch.enable_grad():
        loss, grads = inner_gradient(inner_loss, current.params, hparams, batch, step, create_graph=False)
    with torch.no_grad():
        params, opt_state = optimizer.update(current.params, current.opt_state, grads, hparams, step)
    return StepState(params, opt_state), loss.detach()


def differentiable_step(
    inner_loss: InnerLoss,
    optimizer: InnerOptimizer,
    state: StepState,
    hparams: Dict[str, Tensor],
    batch: Any,
    step: int,
) -> Tuple[StepState, Tensor]:
    """One step recorded in the autograd graph, with the gradient taken by ``create_graph=True``.

    Args:
        state: ``state_t``; tensors that require grad (leaves, or outputs of earlier steps whose
            graph is kept) so that ``state_{t+1}`` is a differentiable function of them.
        hparams: hyper-parameter leaves with ``requires_grad=True``.

    Returns:
        ``(state_{t+1}`` attached to the graph, ``inner loss at step t`` detached).
    """
    with torch.enable_grad():
        loss, grads = inner_gradient(inner_loss, state.params, hparams, batch, step, create_graph=True)
        params, opt_state = optimizer.update(state.params, state.opt_state, grads, hparams, step)
    return StepState(params, opt_state), loss.detach()
