"""The error type of the ALA controller package."""


class ControllerError(ValueError):
    """Bad ALA controller input: beta, window K, gamma, reward metric, states, actions, files."""


def check_positive_int(name: str, value, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum`` (bools refused), else ControllerError naming it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ControllerError(f"{name}={value!r}; expected an integer >= {minimum}")
    return int(value)


def check_finite_tensor(name: str, tensor) -> None:
    import torch

    if not isinstance(tensor, torch.Tensor):
        raise ControllerError(f"{name} is a {type(tensor).__name__}; expected a tensor")
    if tensor.is_floating_point() and not torch.isfinite(tensor).all():
        bad = (~torch.isfinite(tensor)).sum().item()
        raise ControllerError(f"{name} has {bad} non-finite values; expected all finite")
