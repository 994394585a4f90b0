"""What differs between the settings a file was made with and this run's: the one comparison
behind the resume check (``run_dir.resume_differences``) and the L2T teacher's reuse check
(``l2t.train_teacher``)."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Optional

ABSENT = "(absent)"  # shown for a setting one side does not have


def setting_differences(saved: Mapping, now: Mapping,
                        may_differ: Optional[Callable[[str, Any, Any], bool]] = None) -> List[str]:
    """``"key: saved -> now"`` for every setting that differs, sorted by key.

    Args:
        saved, now: nested dicts of plain values (``OmegaConf.to_container``); keys are compared
            dotted (``optim.lr``), lists whole.
        may_differ: ``(key, saved value, now value) -> True`` for a difference that is allowed
            (not listed); a value one side lacks is ``ABSENT``.
    """
    saved, now = _flatten(saved), _flatten(now)
    differences = []
    for key in sorted(set(saved) | set(now)):
        old, new = saved.get(key, ABSENT), now.get(key, ABSENT)
        if old == new or (may_differ is not None and may_differ(key, old, new)):
            continue
        differences.append(f"{key}: {old!r} -> {new!r}")
    return differences


def _flatten(tree: Any, prefix: str = "") -> Dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    if not isinstance(tree, Mapping):
        return {prefix: tree}
    flat: Dict[str, Any] = {}
    for key, value in tree.items():
        flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat
