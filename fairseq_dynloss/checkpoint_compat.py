"""Let fairseq checkpoints load under torch's weights-only ``torch.load`` (torch >= 2.6).

fairseq 0.12 calls ``torch.load`` without ``weights_only``, which defaults to True since torch
2.6, and its checkpoints pickle the model config as an ``argparse.Namespace`` (the legacy
``--arch`` path). Unpickling a Namespace only sets attributes from a dict, so we allow-list that
one class instead of switching the safe loader off (``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``).
Everything else in a fairseq checkpoint (tensors, dicts, lists, numbers, strings) is already
allowed. Called when fairseq imports ``--user-dir fairseq_dynloss``, so ``fairseq-train
--restore-file`` and ``fairseq-generate --user-dir fairseq_dynloss`` work with no environment
variable.
"""

import argparse
import os
import shutil

import torch

from .atomic_save import atomic_write

FAIRSEQ_CHECKPOINT_GLOBALS = [argparse.Namespace]


def allow_fairseq_checkpoints() -> None:
    """Add the classes fairseq checkpoints contain to torch's weights-only allow-list."""
    add_safe_globals = getattr(torch.serialization, "add_safe_globals", None)
    if add_safe_globals is not None:  # torch < 2.4 loads with weights_only=False anyway
        add_safe_globals(FAIRSEQ_CHECKPOINT_GLOBALS)


# -- kill-safe checkpoint files ----------------------------------------------------------------------
# fairseq writes checkpoints[0] atomically (``.tmp`` + rename, without fsync) but *copies* it to
# the other names (checkpoint_last.pt, checkpoint_best.pt, ...) with a plain ``PathManager.copy``:
# a kill during the copy left a 0-byte checkpoint and resume failed with a bare EOFError. The
# plugin makes local copies atomic (temporary file + fsync + os.replace, ``atomic_save``) and
# fsyncs before fairseq's renames; a checkpoint damaged by an older run is refused at load with a
# message naming it and the valid checkpoints next to it.
def make_checkpoint_writes_atomic() -> None:
    """Patch fairseq's ``PathManager.copy`` / ``rename`` (local paths) and
    ``checkpoint_utils.load_checkpoint_to_cpu`` as described above (idempotent)."""
    from fairseq import checkpoint_utils
    from fairseq.file_io import PathManager

    if getattr(PathManager.copy, "_dynloss_atomic", False):
        return
    upstream_copy, upstream_rename = PathManager.copy, PathManager.rename
    upstream_load = checkpoint_utils.load_checkpoint_to_cpu

    def copy(src_path: str, dst_path: str, overwrite: bool = False) -> bool:
        if _is_remote(src_path) or _is_remote(dst_path):
            return upstream_copy(src_path, dst_path, overwrite=overwrite)
        if os.path.exists(dst_path) and not overwrite:
            return False
        atomic_write(dst_path, lambda tmp: shutil.copyfile(src_path, tmp))
        return True

    def rename(src: str, dst: str) -> None:
        if not (_is_remote(src) or _is_remote(dst)):
            with open(src, "rb+") as handle:  # the data on disk before the name points at it
                os.fsync(handle.fileno())
        upstream_rename(src, dst)

    def load_checkpoint_to_cpu(path, *args, **kwargs):
        if not _is_remote(path) and os.path.isfile(path):
            check_checkpoint_file(path)
        return upstream_load(path, *args, **kwargs)

    copy._dynloss_atomic = True
    PathManager.copy, PathManager.rename = staticmethod(copy), staticmethod(rename)
    checkpoint_utils.load_checkpoint_to_cpu = load_checkpoint_to_cpu


def check_checkpoint_file(path: str) -> None:
    """Raise a RuntimeError naming ``path`` when it is empty or a truncated zip archive (what
    ``torch.save`` writes; legacy pickle checkpoints are left to torch), listing the valid
    checkpoints of its folder."""
    reason = _damage(path)
    if reason is None:
        return
    folder = os.path.dirname(os.path.abspath(path))
    others = sorted(name for name in os.listdir(folder)
                    if name.endswith(".pt") and name != os.path.basename(path)
                    and os.path.isfile(os.path.join(folder, name))
                    and _damage(os.path.join(folder, name)) is None)
    hint = (f"valid checkpoints there: {', '.join(others)}; resume from one with --restore-file PATH"
            if others else "no other valid checkpoint is there; start again without --restore-file")
    raise RuntimeError(f"checkpoint {path} {reason}: its write was interrupted (a run killed "
                       f"before the plugin made checkpoint copies atomic); {hint}")


def _damage(path: str):
    """Why ``path`` cannot be a complete checkpoint, or None."""
    import zipfile

    if os.path.getsize(path) == 0:
        return "is empty (0 bytes)"
    with open(path, "rb") as handle:
        zipped = handle.read(4) == b"PK\x03\x04"
    if zipped and not zipfile.is_zipfile(path):
        return "is truncated (an incomplete zip archive)"
    return None


def _is_remote(path: str) -> bool:
    return "://" in str(path)
