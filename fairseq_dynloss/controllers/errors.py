"""The error type of the ALA controller package."""

import math


class ControllerError(ValueError):
    """Bad ALA controller input: beta, window K, gamma, reward metric, states, actions, files."""


def check_positive_int(name: str, value, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum`` (bools refused), else ControllerError naming it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ControllerError(f"{name}={value!r}; expected an integer >= {minimum}")
    return int(value)


def check_number(name: str, value, low: float, high: float = math.inf, high_open: bool = False) -> float:
    """``value`` as a finite float in [low, high] (or [low, high)), else ControllerError naming it."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and low <= value and (value < high if high_open else value <= high)
    if not ok:
        bracket = ")" if high_open else "]"
        raise ControllerError(f"{name}={value!r}; expected a value in [{low}, {high}{bracket}")
    return float(value)


def check_finite_tensor(name: str, tensor) -> None:
    import torch

    if not isinstance(tensor, torch.Tensor):
        raise ControllerError(f"{name} is a {type(tensor).__name__}; expected a tensor")
    if tensor.is_floating_point() and not torch.isfinite(tensor).all():
        bad = (~torch.isfinite(tensor)).sum().item()
        raise ControllerError(f"{name} has {bad} non-finite values; expected all finite")
