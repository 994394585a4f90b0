"""An ``nn.Module`` as a pure function of a parameter dict, for inner and outer losses.

``FunctionalModule(module)`` gives ``params()`` (omega_0 as a dict of detached copies) and a call
``student(params, *inputs, step=t)`` that runs ``module`` with those tensors in place of its
parameters, as ``torch.func.functional_call(module, ..., tie_weights=True)`` does: the tensors go
into the ``_parameters`` / ``_buffers`` slots for the call and the originals come back after.
The slots are looked up once (again only if a Parameter object was replaced), not by name on
every call: ``functional_call`` resolves each dotted name and each tie per call, about 20 us per
call on the benchmark MLP, a tenth of its whole training step. Three things a bare
``functional_call`` leaves to the caller:

* **Weight ties.** ``params()`` holds one entry per distinct Parameter (``named_parameters``
  de-duplicates ties, e.g. fairseq's ``--share-all-embeddings``) and the call fills every tied
  slot with it. Afterwards every ``module._parameters`` / ``_buffers`` slot is put back to the
  exact object it held, even on error, so a real optimizer holding the module's Parameters keeps
  updating the tied weights.
* **Buffers** (BatchNorm running statistics) are not differentiated but must follow the
  trajectory. With ``step=t`` the call runs on a copy of the buffers as they were before inner
  step t and records the copy it updated as the buffers before step t + 1; step 0 starts from
  the module's own buffers. A recomputed step therefore sees exactly the buffers it saw in the
  forward sweep, the outer loss can evaluate omega_T with the running statistics of the
  trajectory (``step=T``), and the module's own buffers are never touched. ``step=None`` runs on
  a copy of the module's own buffers.
* **Kernels.** ``hypergradient`` already runs everything under ``double_backward_kernels``; use
  that context when calling a student under a hand-written second-order graph.
"""

from __future__ import annotations

import contextlib
from typing import Any, Dict, Iterator, List, Optional, Tuple

from torch import Tensor, nn

# (slot dict, key in it, name in params() / named_buffers(), object it held when looked up)
_Slot = Tuple[Dict[str, Any], str, str, Any]


@contextlib.contextmanager
def restored_slots(module: nn.Module) -> Iterator[None]:
    """Context that puts every parameter and buffer slot of ``module`` back on exit.

    A functional call swaps tensors into the module's ``_parameters`` / ``_buffers`` dicts; this
    guarantees the original objects (the same Parameter under every tied name) return.
    """
    saved: List[Tuple[Dict[str, Any], str, Any]] = []
    for sub in module.modules():
        for slots in (sub._parameters, sub._buffers):
            saved.extend((slots, name, value) for name, value in slots.items())
    try:
        yield
    finally:
        for slots, name, value in saved:
            slots[name] = value


def _tensor_slots(module: nn.Module) -> Tuple[List[_Slot], List[_Slot]]:
    """Every parameter and buffer slot of ``module`` and its submodules, tied ones included.

    Returns:
        ``(parameter slots, buffer slots)``; a tied slot carries the name ``named_parameters``
        (``named_buffers``) gives its tensor, i.e. the entry of ``params()`` that fills it.
    """
    param_names = {id(p): name for name, p in module.named_parameters()}
    buffer_names = {id(b): name for name, b in module.named_buffers()}
    params: List[_Slot] = []
    buffers: List[_Slot] = []
    for sub in module.modules():
        params.extend((sub._parameters, k, param_names[id(v)], v) for k, v in sub._parameters.items() if v is not None)
        buffers.extend((sub._buffers, k, buffer_names[id(v)], v) for k, v in sub._buffers.items() if v is not None)
    return params, buffers


class FunctionalModule:
    """Calls ``module`` as a function of ``{name: Tensor}`` parameters.

    Args:
        module: the student; its parameters and buffers define omega_0 and the initial buffers.

    Example::

        student = FunctionalModule(model)
        def inner_loss(params, hparams, batch, step):
            x, y = batch
            return weighted_nll(student(params, x, step=step), y, hparams["w"])
        def outer_loss(params):
            return F.cross_entropy(student(params, x_dev, step=len(batches)), y_dev)
        res = hypergradient(inner_loss, outer_loss, student.params(), {"w": w}, batches)
    """

    def __init__(self, module: nn.Module):
        self.module = module
        self._buffers_before: Dict[int, Dict[str, Tensor]] = {}
        self._look_up_slots()

    def _look_up_slots(self) -> None:
        self._param_slots, self._buffer_slots = _tensor_slots(self.module)
        self._param_names = frozenset(name for _, _, name, _ in self._param_slots)

    def _current_slots(self) -> Tuple[List[_Slot], List[_Slot]]:
        """The slots, looked up again if a Parameter or buffer object was replaced since."""
        if any(slots.get(k) is not held for slots, k, _, held in self._param_slots + self._buffer_slots):
            self._look_up_slots()
        return self._param_slots, self._buffer_slots

    def params(self) -> Dict[str, Tensor]:
        """omega_0: detached copies of the parameters, one entry per distinct (tied) Parameter."""
        return {name: p.detach().clone() for name, p in self.module.named_parameters()}

    def buffers_at(self, step: int) -> Dict[str, Tensor]:
        """The buffers before inner step ``step`` of the latest unroll (step 0: the module's).

        Raises:
            KeyError: step ``step - 1`` has never been run. Recorded buffers persist until the
                same step runs again, so they stay readable after ``hypergradient`` returns.
        """
        if step == 0:
            return {name: held.detach() for _, _, name, held in self._current_slots()[1]}
        if step not in self._buffers_before:
            raise KeyError(
                f"no buffers recorded before inner step {step}; expected the steps to run in "
                f"order from 0 (recorded: {sorted(self._buffers_before)})"
            )
        return self._buffers_before[step]

    def __call__(self, params: Dict[str, Tensor], *args: Any, step: Optional[int] = None, **kwargs: Any) -> Any:
        """``module(*args, **kwargs)`` with ``params`` in place of its parameters.

        Args:
            params: ``{name: Tensor}``, the keys of ``params()``.
            step: the inner step whose buffers to use and advance (see the module docstring);
                None for a copy of the module's own buffers.

        Raises:
            KeyError: ``params`` lacks or adds names compared with ``params()``.
        """
        param_slots, buffer_slots = self._current_slots()
        if self._param_names != params.keys():
            raise KeyError(
                f"params has keys missing {sorted(self._param_names - params.keys())} and unexpected "
                f"{sorted(params.keys() - self._param_names)}; expected the keys of FunctionalModule.params()"
            )
        base = self.buffers_at(0 if step is None else step)
        # Copies: a training-mode forward updates running statistics in place.
        buffers = {name: b.clone() for name, b in base.items()}
        try:
            for slots, k, name, _ in param_slots:
                slots[k] = params[name]
            for slots, k, name, _ in buffer_slots:
                slots[k] = buffers[name]
            out = self.module(*args, **kwargs)
        finally:
            for slots, k, _, held in param_slots + buffer_slots:
                slots[k] = held
        if step is not None:
            self._buffers_before[step + 1] = {name: b.detach() for name, b in buffers.items()}
        return out
