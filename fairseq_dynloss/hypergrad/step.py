"""One inner optimiser step, run forward or differentiated (a vector-Jacobian product).

The state of the unroll at step t is ``(omega_t, buffers_t)``: the student parameters and the
inner optimiser's buffers. One step maps it to the state at t + 1:

    g_t            = d inner_loss(omega_t, theta, batch_t, t) / d omega_t
    state_{t+1}    = optimizer.update(state_t, g_t)

``forward_step`` computes it without building a graph beyond the one gradient (the cost of a
plain training step). ``vjp_step`` recomputes it with ``create_graph=True`` and takes, with one
``autograd.grad`` call, the products of the transposed Jacobians with the adjoint of
``state_{t+1}``: that gives the adjoint of ``state_t`` and this step's share of ``d theta``.
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


def call_inner_loss(inner_loss: InnerLoss, params: Params, hparams: Dict[str, Tensor], batch: Any, step: int) -> Tensor:
    """``inner_loss(params, hparams, batch, step)``, checked to be a scalar that depends on params.

    Raises:
        TypeError: the loss is not a tensor.
        ValueError: the loss is not a scalar, or does not depend on the parameters.
    """
    loss = inner_loss(params, hparams, batch, step)
    if not isinstance(loss, Tensor):
        raise TypeError(f"inner_loss must return a scalar tensor, got {type(loss).__name__} at step {step}")
    if loss.dim() != 0:
        raise ValueError(f"inner_loss must return a scalar tensor, got shape {tuple(loss.shape)} at step {step}")
    if not loss.requires_grad:
        raise ValueError(
            f"inner_loss at step {step} does not depend on the student parameters it was given; "
            "expected a loss computed from params (e.g. through functional_call)"
        )
    return loss


def param_grads(loss: Tensor, params: Params, create_graph: bool) -> Params:
    """``d loss / d params``; zeros for parameters the loss does not use."""
    grads = torch.autograd.grad(
        loss, list(params.values()), create_graph=create_graph, allow_unused=True, materialize_grads=True
    )
    return dict(zip(params, grads))


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
        loss = call_inner_loss(inner_loss, current.params, hparams, batch, step)
        grads = param_grads(loss, current.params, create_graph=False)
    with torch.no_grad():
        params, opt_state = optimizer.update(current.params, current.opt_state, grads, hparams, step)
    return StepState(params, opt_state), loss.detach()


def vjp_step(
    inner_loss: InnerLoss,
    optimizer: InnerOptimizer,
    state: StepState,
    hparams: Dict[str, Tensor],
    batch: Any,
    step: int,
    adjoint: StepState,
) -> Tuple[StepState, List[Tensor]]:
    """The transposed Jacobians of one step applied to the adjoint of its output.

    Args:
        state: ``state_t`` (detached).
        hparams: hyper-parameter leaves with ``requires_grad=True``.
        adjoint: ``d outer / d state_{t+1}``, same structure as ``state``.

    Returns:
        ``(d outer / d state_t, [this step's d outer / d hparams, in hparams order]``).
    """
    current = state.detached(requires_grad=True)
    with torch.enable_grad():
        loss = call_inner_loss(inner_loss, current.params, hparams, batch, step)
        grads = param_grads(loss, current.params, create_graph=True)
        params, opt_state = optimizer.update(current.params, current.opt_state, grads, hparams, step)
        outputs = StepState(params, opt_state).flat()
        # An output that does not depend on any input contributes nothing; autograd.grad
        # refuses such outputs, so they are left out.
        pairs = [(out, adj) for out, adj in zip(outputs, adjoint.flat()) if out.requires_grad]
        inputs = current.flat() + list(hparams.values())
        vjps = torch.autograd.grad(
            [out for out, _ in pairs],
            inputs,
            grad_outputs=[adj for _, adj in pairs],
            allow_unused=True,
            materialize_grads=True,
        )
    num_state = len(inputs) - len(hparams)
    return current.like(list(vjps[:num_state])), list(vjps[num_state:])
