"""``atomic_torch_save``: a crash or a full disk never leaves a half-written file behind."""

import os
import tempfile

import torch


def atomic_torch_save(payload, path: str) -> None:
    """``torch.save`` to a temporary file in the target folder, then rename it over ``path``."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
