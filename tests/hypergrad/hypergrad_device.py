"""The device the hypergradient tests run on: ``DYNLOSS_TEST_DEVICE`` (default ``cpu``).

``DYNLOSS_TEST_DEVICE=cuda`` runs the exactness tests on the GPU (``scripts/gpu_check.sh``); they
are skipped, each with the reason, when CUDA is not available. Problems are always built on the
CPU (seeded CPU generators) and then moved, so every device sees the same numbers.

Test modules import the fixture (``from hypergrad_device import device``).
"""

import os

import pytest
import torch

DEVICE_ENV = "DYNLOSS_TEST_DEVICE"


@pytest.fixture(scope="session")
def device() -> torch.device:
    """``torch.device`` named by ``DYNLOSS_TEST_DEVICE``.

    Raises:
        pytest.UsageError: the variable names neither ``cpu`` nor a ``cuda`` device.
    """
    name = os.environ.get(DEVICE_ENV, "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise pytest.UsageError(f"{DEVICE_ENV}={name!r} is not a torch device ({err}); expected cpu or cuda") from err
    if device.type not in ("cpu", "cuda"):
        raise pytest.UsageError(f"{DEVICE_ENV}={name!r}; expected cpu or cuda[:index]")
    if device.type == "cuda" and not torch.cuda.is_available():
        pytest.skip(f"{DEVICE_ENV}={name} but torch.cuda.is_available() is False")
    return device
