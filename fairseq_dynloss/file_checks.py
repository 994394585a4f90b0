"""Checks on the files the project loads (Phi, teacher, controller files, trainer checkpoints).

A file is validated when it is read, and every error names the file:

* ``read_torch_file``: missing / empty / unreadable files (``weights_only=True``) and a checksum
  that does not match (``atomic_save.atomic_torch_save`` stores one in every dict it writes;
  files without one, e.g. written by hand, are read unchecked);
* ``check_tensors``: every tensor is dense, real and finite (a NaN policy or teacher weight would
  otherwise load, act and be saved again);
* ``check_module_shapes``: a module described by a file's config is first built on the ``meta``
  device (no memory) and its parameter shapes compared with the file's tensors, so a crafted
  size (``hidden: 10**9``) is refused before anything is allocated;
* ``check_int_fields``: plain numbers of a file's config (a NaN ``horizon`` aborts later).
"""

from __future__ import annotations

import hashlib
import math
import os
from typing import Any, Callable, Dict, Iterable, Tuple, Type

import torch

CHECKSUM_KEY = "checksum"


def tensor_checksum(payload: Any) -> str:
    """``"sha256:HEX"`` over the structure of ``payload`` (dict keys, list positions), every
    tensor's dtype, shape and bytes, and the ``repr`` of plain values (numbers, strings, None).

    ``payload``: nested dicts / lists / tuples of tensors and plain values; a top-level
    ``checksum`` key is left out (it holds the result).
    """
    digest = hashlib.sha256()
    _hash_into(digest, {k: v for k, v in payload.items() if k != CHECKSUM_KEY}
               if isinstance(payload, dict) else payload)
    return "sha256:" + digest.hexdigest()


def _hash_into(digest, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        digest.update(f"T{value.dtype}{tuple(value.shape)}{value.layout};".encode())
        if value.layout == torch.strided:
            data = value.detach().to("cpu").contiguous().reshape(-1)
            if data.numel():
                digest.update(data.view(torch.uint8).numpy().tobytes())
        return
    if isinstance(value, dict):
        digest.update(f"D{len(value)};".encode())
        for key, item in value.items():
            digest.update(f"K{key!r};".encode())
            _hash_into(digest, item)
        return
    if isinstance(value, (list, tuple)):
        digest.update(f"L{len(value)};".encode())
        for item in value:
            _hash_into(digest, item)
        return
    if value is None or isinstance(value, (bool, int, float, str)):
        digest.update(f"V{value!r};".encode())
        return
    digest.update(f"O{type(value).__name__};".encode())  # e.g. argparse.Namespace: type only


def read_torch_file(path: str, what: str, error: Type[Exception] = ValueError,
                    map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``, refusing with ``error`` (naming ``what`` and
    ``path``) a missing, empty, unreadable or corrupted file."""
    if not os.path.isfile(path):
        raise error(f"{what} {path!r} does not exist")
    if os.path.getsize(path) == 0:
        raise error(f"{what} {path!r} is empty (0 bytes): its write was interrupted, or it is not a "
                    "torch file")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # corrupt file, or pickled objects outside the weights-only set
        reason = str(err).strip() or type(err).__name__
        raise error(f"cannot read {what} {path!r} with weights_only=True: {reason}") from err
    if isinstance(payload, dict) and CHECKSUM_KEY in payload:
        stored = payload[CHECKSUM_KEY]
        if stored != tensor_checksum(payload):
            raise error(f"{what} {path!r} is corrupted: its contents do not match the checksum it "
                        "was written with")
    return payload


def check_tensors(tree: Any, path: str, what: str, error: Type[Exception] = ValueError,
                  finite: bool = True) -> None:
    """Every tensor in ``tree`` (nested dicts / lists) is dense (strided), real and -- with
    ``finite`` -- has only finite floating-point values; else ``error`` names the entry."""
    for name, tensor in _tensors(tree, ""):
        where = f"{what} {path!r}: tensor {name or '(top level)'}"
        if tensor.layout != torch.strided:
            raise error(f"{where} is {tensor.layout}; expected a dense tensor")
        if tensor.is_complex():
            raise error(f"{where} is complex ({tensor.dtype}); expected real values")
        if tensor.is_quantized:
            raise error(f"{where} is quantized ({tensor.dtype}); expected a plain tensor")
        if finite and tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise error(f"{where} has {bad} non-finite value(s) (NaN or Inf) of {tensor.numel()}")


def _tensors(tree: Any, prefix: str) -> Iterable[Tuple[str, torch.Tensor]]:
    if isinstance(tree, torch.Tensor):
        yield prefix, tree
    elif isinstance(tree, dict):
        for key, value in tree.items():
            yield from _tensors(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(tree, (list, tuple)):
        for index, value in enumerate(tree):
            yield from _tensors(value, f"{prefix}[{index}]")


def check_module_shapes(build: Callable[[], torch.nn.Module], state_dict: Dict[str, Any], path: str,
                        what: str, error: Type[Exception] = ValueError) -> None:
    """Build the module a file describes on the ``meta`` device (no memory) and check that
    ``state_dict`` has exactly its entries, with its shapes; call it before building for real."""
    if not isinstance(state_dict, dict):
        raise error(f"{what} {path!r}: the weights are a {type(state_dict).__name__}; expected a dict")
    try:
        with torch.device("meta"):
            expected = {k: tuple(v.shape) for k, v in build().state_dict().items()}
    except Exception as err:  # e.g. an unknown parametrisation: named with the file
        raise error(f"{what} {path!r} has a config that builds no valid module: {err}") from err
    got = {k: tuple(v.shape) for k, v in state_dict.items() if isinstance(v, torch.Tensor)}
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(state_dict) - set(expected))
    if missing or extra:
        raise error(f"{what} {path!r} does not match its config: missing {missing}, unexpected {extra}")
    for key, shape in expected.items():
        if got[key] != shape:
            raise error(f"{what} {path!r} does not match its config: {key} has shape {list(got[key])}; "
                        f"the config builds {list(shape)}")


def check_int_fields(config: Dict[str, Any], rules: Dict[str, int], path: str, what: str,
                     error: Type[Exception] = ValueError) -> None:
    """``config[key]`` (when present and not None) is an integer >= ``rules[key]``."""
    for key, low in rules.items():
        value = config.get(key)
        if value is None:
            continue
        is_int = isinstance(value, int) and not isinstance(value, bool)
        if not is_int and isinstance(value, float) and math.isfinite(value) and value.is_integer():
            is_int = True
        if not is_int or value < low:
            raise error(f"{what} {path!r} has {key}={value!r}; expected an integer >= {low}")


def check_teacher_file(config: Dict[str, Any], state_dict: Dict[str, Any],
                       build: Callable[[], torch.nn.Module], path: str) -> None:
    """A teacher file's (``teacher/io.py``) sizes and horizon are positive integers, its weights
    finite and shaped as ``build()`` (a meta-device build) makes them; else PhiError."""
    from .losses.phi import PhiError

    sizes = {"num_classes": 1, "rank": 1, "num_buckets": 1, "num_gates": 1, "hidden": 1, "dim": 1,
             "horizon": 1, "teacher_steps": 0, "seed": 0}
    check_int_fields(config, sizes, path, "teacher file", PhiError)
    check_tensors(state_dict, path, "teacher file", PhiError)
    check_module_shapes(build, state_dict, path, "teacher file", PhiError)


def check_controller_file(payload: Dict[str, Any], build: Callable[[], torch.nn.Module], path: str) -> None:
    """An ALA controller file's (``controllers/reinforce.py``) policy sizes are positive
    integers, its policy and learner state finite and the policy shaped as ``build()`` makes it
    (on the meta device); the replay memory is dense and real (NaN marks unknown values there);
    else ControllerError."""
    from .controllers.errors import ControllerError

    check_int_fields(payload.get("config") or {}, {"feature_size": 1, "hidden": 1}, path,
                     "controller file", ControllerError)
    check_tensors(payload.get("policy"), path, "controller file", ControllerError)
    check_tensors(payload.get("learner"), path, "controller file", ControllerError)
    check_tensors(payload.get("memory"), path, "controller file", ControllerError, finite=False)
    check_module_shapes(build, payload.get("policy"), path, "controller file", ControllerError)
