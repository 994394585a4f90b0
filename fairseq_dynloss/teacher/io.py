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
    if config.get("kind") not in TEACHERS:
        raise PhiError(f"teacher file {path!r} has unknown kind {config.get('kind')!r}; "
                       f"expected one of {sorted(TEACHERS)}")
    # NaN / Inf weights, a NaN horizon, a crafted size: refused naming the file, before allocating
    check_teacher_file(config, payload["state_dict"], lambda: _build(config), path)
    teacher = _build(config)
    try:
        teacher.load_state_dict(payload["state_dict"], strict=True)
    except RuntimeError as err:
        raise PhiError(f"teacher file {path!r} does not match its config: {err}") from err
    if "horizon" in config:
        teacher.config["horizon"] = config["horizon"]
    teacher.config["seed"] = config.get("seed")  # None: written before the seed was recorded
    return teacher


def _build(config: dict, seed: Optional[int] = None) -> Teacher:
    """A freshly initialised teacher of a teacher file's ``config`` (its weights are the
    initialisation of ``seed``, 0 if None: the caller loads the file's own weights over them)."""
    kwargs = {k: config[k] for k in ("rank", "num_buckets", "num_gates", "hidden", "fixed_diagonal", "form", "dim")
              if config.get(k) is not None}
    return TEACHERS[config["kind"]](config["parametrisation"], config["num_classes"],
                                    seed=0 if seed is None else seed, **kwargs)


def untrained_teacher(path: str, seed: Optional[int] = None) -> Teacher:
    """The teacher of the file ``path`` as it was before training: the same kind, sizes, form
    and horizon, the initialisation of its seed (the file's, or ``seed`` for files written
    before the seed was recorded). Deploying it is the control that tells what the teacher
    learned from what its starting point already does (docs/investigation.md §4g).

    Raises:
        PhiError: an unreadable teacher file (``load_teacher``), or no seed to rebuild it with.
    """
    trained = load_teacher(path)
    recorded = trained.config.get("seed")
    if recorded is None and seed is None:
        raise PhiError(f"teacher file {path!r} does not record the seed of its initialisation; "
                       "pass the seed it was built with (translation_l2t: --teacher-seed, default 1)")
    if recorded is not None and seed is not None and int(seed) != int(recorded):
        raise PhiError(f"teacher file {path!r} was initialised with seed {recorded}; got seed={seed}")
    teacher = _build(trained.config, int(recorded if recorded is not None else seed))
    if "horizon" in trained.config:
        teacher.config["horizon"] = trained.config["horizon"]
    return teacher
