"""Teacher files: ``{"config": {...}, "state_dict": {...}}``, safe for ``weights_only=True``."""

import os
from typing import Optional

import torch

from ..atomic_save import atomic_torch_save
from ..file_checks import check_teacher_file, read_torch_file
from ..losses.phi import PhiError
from .models import TEACHERS, Teacher


def save_teacher(teacher: Teacher, path: str, **extra) -> None:
    """Write the teacher (atomically: temporary file + rename). ``extra`` holds plain values
    (e.g. ``horizon`` = the student training length the teacher was trained for)."""
    payload = {"config": dict(teacher.config, **extra),
               "state_dict": {k: v.detach().cpu().clone() for k, v in teacher.state_dict().items()}}
    atomic_torch_save(payload, path)


def load_teacher(path: str, parametrisation: Optional[str] = None, num_classes: Optional[int] = None,
                 rank: Optional[int] = None, num_buckets: Optional[int] = None,
                 form: Optional[str] = None) -> Teacher:
    """Read a teacher file with ``weights_only=True`` and check it fits the student's Phi.

    Args:
        form: the student's loss form (``paper`` / ``prob``); None: not checked. Files written
            before teachers had a form are paper-form teachers.

    Raises:
        PhiError: missing or unreadable file, unknown kind, or a teacher built for another
            parametrisation / vocabulary size / rank / number of buckets / loss form.
    """
    if not os.path.isfile(path):
        raise PhiError(f"teacher file {path!r} does not exist")
    payload = read_torch_file(path, "teacher file", PhiError)  # empty / unreadable / corrupted
    if not isinstance(payload, dict) or not {"config", "state_dict"} <= payload.keys():
        raise PhiError(f"teacher file {path!r} must hold a dict with 'config' and 'state_dict'")
    config = dict(payload["config"])
    expected = {"parametrisation": parametrisation, "num_classes": num_classes}
    if parametrisation == "diag_lowrank":
        expected["rank"] = rank
    if parametrisation == "bucketed":
        expected["num_buckets"] = num_buckets
    if form is not None and config.get("form", "paper") != form:
        raise PhiError(f"teacher file {path!r} was built for the loss form {config.get('form', 'paper')!r}; "
                       f"this student uses form {form!r} (a teacher's Phi is only valid in its own form)")
    for key, value in expected.items():
        if value is not None and config.get(key) != value:
            raise PhiError(
                f"teacher file {path!r} was built for {key}={config.get(key)!r}; this student needs {value!r}"
            )
    kind = config.pop("kind", None)
    if kind not in TEACHERS:
        raise PhiError(f"teacher file {path!r} has unknown kind {kind!r}; expected one of {sorted(TEACHERS)}")
    kwargs = {k: config[k] for k in ("rank", "num_buckets", "num_gates", "hidden", "fixed_diagonal", "form")
              if config.get(k) is not None}
    if "dim" in config:
        kwargs["dim"] = config["dim"]
    # NaN / Inf weights, a NaN horizon, a crafted size: refused naming the file, before allocating
    check_teacher_file(config, payload["state_dict"], lambda: TEACHERS[kind](
        config["parametrisation"], config["num_classes"], **kwargs), path)
    teacher = TEACHERS[kind](config["parametrisation"], config["num_classes"], **kwargs)
    try:
        teacher.load_state_dict(payload["state_dict"], strict=True)
    except RuntimeError as err:
        raise PhiError(f"teacher file {path!r} does not match its config: {err}") from err
    for key in ("horizon",):
        if key in config:
            teacher.config[key] = config[key]
    return teacher
