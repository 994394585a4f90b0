"""Per-step learning rates of the inner optimisers.

A learning rate is given as one of:

* a number -- the same rate at every step;
* a sequence of numbers -- ``lr[t]`` at step ``t`` (a schedule fixed in advance);
* a callable ``step -> number`` -- a schedule computed on demand;
* a string -- the name of a hyper-parameter in ``hparams`` (a 0-d tensor, or a 1-D tensor
  indexed by step). The rate is then a tensor in the graph, so ``hypergradient`` returns
  ``d outer / d lr`` like for any other hyper-parameter;
* ``LogScaled(base, name)`` -- ``base``'s rate times ``exp(hparams[name])`` (a 0-d tensor): a
  meta-learned multiplier of a fixed schedule (the ``lr_scale`` teacher).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Callable, Dict, Sequence, Union

import torch
from torch import Tensor


@dataclass(frozen=True)
class LogScaled:
    """``base``'s rate at each step times ``exp(hparams[name])``.

    Attributes:
        base: a number, sequence or callable (see the module docstring).
        name: a 0-d hyper-parameter, the log of the multiplier.
    """

    base: object
    name: str


LearningRate = Union[float, Sequence[float], Callable[[int], float], str, LogScaled]


def learning_rate_at(lr: LearningRate, hparams: Dict[str, Tensor], step: int) -> Union[float, Tensor]:
    """The learning rate of inner step ``step``.

    Args:
        lr: the learning-rate specification (see the module docstring).
        hparams: the hyper-parameters; consulted only when ``lr`` is a string.
        step: the inner step index, from 0.

    Returns:
        A Python float, or a 0-d tensor when ``lr`` names a hyper-parameter.

    Raises:
        KeyError: ``lr`` names a hyper-parameter that ``hparams`` does not have.
        ValueError: the schedule is too short or the named tensor has the wrong shape.
    """
    if isinstance(lr, LogScaled):
        if lr.name not in hparams or hparams[lr.name].dim() != 0:
            raise KeyError(f"learning-rate multiplier '{lr.name}' must be a 0-d tensor in hparams "
                           f"(has {sorted(hparams)})")
        return learning_rate_at(lr.base, hparams, step) * torch.exp(hparams[lr.name])
    if isinstance(lr, str):
        if lr not in hparams:
            raise KeyError(
                f"learning rate refers to hyper-parameter '{lr}', but hparams has only "
                f"{sorted(hparams)}"
            )
        rate = hparams[lr]
        if rate.dim() == 0:
            return rate
        if rate.dim() != 1 or rate.shape[0] <= step:
            raise ValueError(
                f"learning-rate hyper-parameter '{lr}' has shape {tuple(rate.shape)}; expected a "
                f"0-d tensor or a 1-D tensor with more than {step} entries (one per inner step)"
            )
        return rate[step]
    if isinstance(lr, numbers.Real):
        return float(lr)
    if callable(lr):
        return float(lr(step))
    if len(lr) <= step:
        raise ValueError(
            f"learning-rate schedule has {len(lr)} entries; expected more than {step} "
            "(one per inner step)"
        )
    return float(lr[step])


def check_learning_rate(lr: LearningRate, hparams: Dict[str, Tensor], num_steps: int) -> None:
    """Validates ``lr`` for an unroll of ``num_steps`` steps before any work is done.

    Raises:
        KeyError, ValueError: as ``learning_rate_at`` would at the last step.
        TypeError: ``lr`` is of none of the accepted kinds.
    """
    if isinstance(lr, torch.Tensor):
        raise TypeError(
            "a tensor learning rate must be passed as a hyper-parameter: put it in hparams and "
            "give its name as lr (e.g. SGD(lr='lr')), so that its hypergradient is returned"
        )
    if not (isinstance(lr, (str, numbers.Real, LogScaled)) or callable(lr) or isinstance(lr, Sequence)):
        raise TypeError(
            f"learning rate must be a number, a sequence, a callable or a hyper-parameter name; "
            f"got {type(lr).__name__}"
        )
    learning_rate_at(lr, hparams, num_steps - 1)
