"""Refuse command-line overrides that add keys no config knows (``+task.epocs=3``).

Hydra refuses ``task.epocs=3`` (the config is in struct mode) and suggests ``+task.epocs=3``,
which then adds the typo as a new key that nothing reads: the run silently uses the default.
Adding (``+key`` / ``++key``) is allowed only for keys that some option of the same config group
defines (``+task.m_per_class=4`` on task=digits: ``digits_metric`` has it), or under ``hydra.``.
"""

from __future__ import annotations

import difflib
from importlib import resources
from typing import Dict, Iterable, List, Set

from omegaconf import DictConfig, OmegaConf

from .registry import ConfigError

CONF_PACKAGE = "fairseq_dynloss.trainer.conf"
PRIMARY = "dynloss_train.yaml"


def _key_paths(node, prefix: str = "") -> Set[str]:
    """Every dotted key path of a (nested) mapping: {"a", "a.b", ...}."""
    paths: Set[str] = set()
    if isinstance(node, (dict, DictConfig)):
        for key, value in node.items():
            path = f"{prefix}{key}"
            paths.add(path)
            paths |= _key_paths(value, path + ".")
    return paths


def known_keys() -> Dict[str, Set[str]]:
    """The key paths each config group's options define (union over the options), and the
    top-level keys under ``""``."""
    root = resources.files(CONF_PACKAGE)
    primary = OmegaConf.to_container(OmegaConf.load(str(root / PRIMARY)), resolve=False)
    keys: Dict[str, Set[str]] = {"": {k for k in primary if k not in ("defaults", "hydra")}}
    for group in root.iterdir():
        if group.is_dir() and not group.name.startswith("_"):
            keys[group.name] = set()
            for option in group.iterdir():
                if option.name.endswith(".yaml"):
                    keys[group.name] |= _key_paths(OmegaConf.to_container(OmegaConf.load(str(option)), resolve=False))
    return keys


def check_added_keys(overrides: Iterable[str]) -> None:
    """Raise ConfigError for a ``+key=value`` / ``++key=value`` override whose key no option of its
    config group defines (``hydra.*`` keys and config-group selections pass).

    Args:
        overrides: the command-line overrides, as ``HydraConfig.get().overrides.task``.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    keys = known_keys()
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        if not (override.is_add() or override.is_force_add()):
            continue
        path = override.key_or_group
        if path.startswith("hydra.") or path in keys:  # hydra's own settings; a group selection
            continue
        group, _, rest = path.partition(".")
        if rest and group in keys:
            valid, name, shown = keys[group], rest, f"{group}."
        else:
            valid, name, shown = keys[""], path, ""
        if name in valid:
            continue
        close = difflib.get_close_matches(name, sorted(valid), n=1)
        hint = f"; did you mean {shown}{close[0]}?" if close else ""
        raise ConfigError(
            f"unknown key {path!r} in {override.input_line!r}: no {group + ' ' if shown else ''}"
            f"config defines it{hint} (valid: {', '.join(shown + k for k in _top(valid))})")


def _top(keys: Set[str]) -> List[str]:
    """The first-level names of ``keys``, sorted."""
    return sorted(k for k in keys if "." not in k)
