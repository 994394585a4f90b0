"""The functional twin of a live ``torch.optim`` optimiser: the same update rule with the same
hyper-parameters, continuing from its current buffers (momentum, Adam's moments and step count).

An unroll from a live student must take the student's own steps, or what a teacher learns about
a step does not transfer (a fresh Adam's first steps are sign-like, whatever the moments say).
Optimisers without a functional twin are refused, never replaced by another.
"""

from __future__ import annotations

from typing import Dict, Tuple

import torch

from .optimizers import SGD, Adam, AdamW, InnerOptimizer, OptState
from .schedule import LearningRate


class NoFunctionalTwinError(TypeError):
    """The optimiser (or one of its options) has no functional implementation here."""


def _group(optimizer: torch.optim.Optimizer) -> Dict:
    groups = optimizer.param_groups
    keys = [k for k in groups[0] if k != "params"]
    for group in groups[1:]:
        differing = [k for k in keys if group.get(k) != groups[0][k]]
        if differing:
            raise NoFunctionalTwinError(
                f"{type(optimizer).__name__} has parameter groups with different {differing}; the functional "
                "optimiser has one set of hyper-parameters")
    return groups[0]


def _refuse(optimizer, group: Dict, options: Dict) -> None:
    for key, allowed in options.items():
        if key in group and group[key] != allowed:
            raise NoFunctionalTwinError(
                f"{type(optimizer).__name__}({key}={group[key]!r}) has no functional twin; expected "
                f"{key}={allowed!r}")


def functional_twin(optimizer: torch.optim.Optimizer, names: Dict[torch.Tensor, str],
                    lr: LearningRate = None) -> Tuple[InnerOptimizer, OptState]:
    """The functional optimiser and its buffers that continue ``optimizer`` exactly.

    Args:
        optimizer: a ``torch.optim.SGD`` (dampening 0), ``Adam`` or ``AdamW`` (no amsgrad, no
            maximize), all groups with the same hyper-parameters.
        names: ``{parameter: name}`` of every optimised parameter (the keys of the functional
            params dict).
        lr: the learning rate of each unrolled step (a number, a list or a callable, see
            ``schedule.py``); None: the optimiser's current rate, constant.

    Returns:
        ``(inner optimiser, opt_state)``; ``opt_state`` holds copies of the live buffers
        (zeros where the optimiser has not stepped yet).

    Raises:
        NoFunctionalTwinError: any other optimiser or option.
    """
    group = _group(optimizer)
    rate = group["lr"] if lr is None else lr
    params = [p for g in optimizer.param_groups for p in g["params"]]
    missing = [i for i, p in enumerate(params) if p not in names]
    if missing:
        raise ValueError(f"names has no entry for optimised parameters at positions {missing}")
    state = optimizer.state

    def buffers(key: str) -> Dict[str, torch.Tensor]:
        return {names[p]: (state[p][key].detach().clone() if key in state.get(p, {}) and state[p][key] is not None
                           else torch.zeros_like(p.detach())) for p in params}

    common = {"maximize": False}
    if type(optimizer) is torch.optim.SGD:
        _refuse(optimizer, group, {"dampening": 0, **common})
        twin = SGD(lr=rate, momentum=group["momentum"], nesterov=group["nesterov"],
                   weight_decay=group["weight_decay"])
        # torch.optim.SGD's first step sets the buffer to the gradient (b_1 = g); the functional
        # rule b = mu b + g from b = 0 gives the same.
        return twin, ({"momentum": buffers("momentum_buffer")} if twin.momentum else {})
    if type(optimizer) in (torch.optim.Adam, torch.optim.AdamW):
        _refuse(optimizer, group, {"amsgrad": False, **common})
        steps = {int(state[p]["step"]) if "step" in state.get(p, {}) else 0 for p in params}
        if len(steps) != 1:
            raise NoFunctionalTwinError(f"Adam parameters have taken different numbers of steps {sorted(steps)}")
        cls = AdamW if type(optimizer) is torch.optim.AdamW else Adam
        twin = cls(lr=rate, betas=tuple(group["betas"]), eps=group["eps"], weight_decay=group["weight_decay"],
                   first_step=steps.pop())
        return twin, {"exp_avg": buffers("exp_avg"), "exp_avg_sq": buffers("exp_avg_sq")}
    raise NoFunctionalTwinError(
        f"{type(optimizer).__name__} has no functional twin; expected torch.optim.SGD, Adam or AdamW")
