"""Atomic file writes: a crash, a kill or a full disk never leaves a half-written file behind.

Every file the project writes goes to a temporary file in the target folder (``.NAME*.tmp``),
is flushed to disk (``fsync``), gets the permissions a plain ``open`` would give, and is renamed
over ``NAME`` (``os.replace`` is atomic); the folder is fsynced too, so the rename survives a
power loss. A kill between the two leaves only the temporary file, which the next run in that
folder removes (``remove_stale_temporaries``). ``torch.save`` payloads that are dicts also carry
a checksum of their tensors (``file_checks.tensor_checksum``): torch's zip reader does not
verify its CRCs, so flipped bytes would otherwise load silently.
"""

from __future__ import annotations

import glob
import os
import tempfile
from typing import Callable, List

import torch

from .file_checks import CHECKSUM_KEY, tensor_checksum

TEMP_SUFFIX = ".tmp"


def atomic_write(path: str, write: Callable[[str], None], make_folder: bool = True) -> None:
    """Call ``write(tmp_path)``, fsync, then rename onto ``path``; a failure leaves ``path``
    untouched and removes the temporary file. ``make_folder``: create ``path``'s folder."""
    folder = os.path.dirname(os.path.abspath(path))
    if make_folder:
        os.makedirs(folder, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path), suffix=TEMP_SUFFIX)
    os.close(handle)
    try:
        write(tmp)
        with open(tmp, "rb+") as written:
            os.fsync(written.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp, path)
        _fsync_folder(folder)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_torch_save(payload, path: str, make_folder: bool = False) -> None:
    """``torch.save`` atomically; a dict payload gets its tensors' checksum under ``checksum``.
    A missing folder is an error unless ``make_folder``."""
    if isinstance(payload, dict):
        payload = {key: value for key, value in payload.items() if key != CHECKSUM_KEY}
        payload[CHECKSUM_KEY] = tensor_checksum(payload)
    atomic_write(path, lambda tmp: torch.save(payload, tmp), make_folder)


def remove_stale_temporaries(folder: str) -> List[str]:
    """Delete the temporary files that killed writes left in ``folder`` (call it only while no
    other process writes there, e.g. under the run folder's lock). Returns the removed paths."""
    stale = glob.glob(os.path.join(glob.escape(folder), "." + "*" + TEMP_SUFFIX))
    for path in stale:
        os.remove(path)
    return stale


def _fsync_folder(folder: str) -> None:
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. a platform without directory handles: the rename is still atomic
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
