"""Value checks of a ``dynloss-train`` config, before anything is built or written.

Each bad value is refused with a ConfigError naming the option, its value and what is expected:
a value that would train to garbage (``loss.scale=-1``), train nothing (``task.epochs=0``), fail
late under another name (``controller.horizon=0``) or save garbage (``teacher.lr=inf``).
Options of config groups that are not selected are absent and not checked; ``null`` means
"default" wherever the config files allow it.
"""

from __future__ import annotations

import math
from typing import Any, Tuple

from omegaconf import DictConfig, OmegaConf

from .registry import ConfigError

# (option, rule): "int>=0" / "int>=1" integers; "num>0" / "num>=0" finite numbers;
# "fractions" a list of numbers in (0, 1]; "[0,1)" a finite number in that interval.
RULES: Tuple[Tuple[str, str], ...] = (
    ("seed", "int>=0"),
    ("eval_batch_size", "int>=1"),
    ("plot_every", "int>=1"),
    ("task.epochs", "int>=1"),
    ("task.batch_size", "int>=1"),
    ("task.val_size", "int>=0"),
    ("task.test_size", "int>=0"),
    ("task.m_per_class", "int>=0"),
    ("optim.lr", "num>0"),
    ("optim.momentum", "[0,1)"),
    ("optim.weight_decay", "num>=0"),
    ("optim.gamma", "num>0"),
    ("optim.milestones", "fractions"),
    ("loss.scale", "num>0"),
    ("loss.nll_weight", "[0,1]"),
    ("loss.label_smoothing", "[0,1)"),
    ("teacher.lr", "num>0"),
    ("teacher.inner_lr", "num>0"),
    ("teacher.inner_momentum", "[0,1)"),
    ("teacher.clip", "num>=0"),
    ("teacher.phi_penalty", "num>=0"),
    ("controller.window", "int>=1"),
    ("controller.hidden", "int>=1"),
    ("controller.lr", "num>0"),
    ("controller.base_beta", "num>0"),
    ("controller.replay_capacity", "int>=0"),
    ("controller.replay_batch", "int>=1"),
    ("controller.history", "int>=0"),
    ("controller.val_subset", "int>=0"),
    ("controller.metric_every", "int>=1"),
)

# loss.epsilon means a different thing per loss: label smoothing's mass, Poly-1's coefficient
# (Leng et al. 2022: eps >= -1 keeps the loss non-negative, since 1 - p_y <= -log p_y).
EPSILON_RULES = {"label_smoothing": "[0,1)", "poly1": "num>=-1"}

EXPECTED = {
    "int>=0": "an integer >= 0", "int>=1": "an integer >= 1", "num>0": "a finite number > 0",
    "num>=0": "a finite number >= 0", "[0,1)": "a finite number in [0, 1)",
    "[0,1]": "a number in [0, 1]", "num>=-1": "a finite number >= -1", "fractions": "a list of fractions of task.epochs in (0, 1]",
}


def check_config_values(cfg: DictConfig) -> None:
    """Refuse the first option of ``RULES`` whose value breaks its rule (ConfigError)."""
    loss_name = OmegaConf.select(cfg, "loss.name", default=None)
    rules = RULES + ((("loss.epsilon", EPSILON_RULES[loss_name]),) if loss_name in EPSILON_RULES else ())
    for key, rule in rules:
        value = OmegaConf.select(cfg, key, default=None)
        if value is None:
            continue
        if rule == "fractions":
            values = list(value) if OmegaConf.is_list(value) or isinstance(value, (list, tuple)) else None
            if values is None or not all(_is_number(v) and 0 < v <= 1 for v in values):
                raise ConfigError(f"{key}={_show(value)}; expected {EXPECTED[rule]}")
            continue
        if not satisfies(value, rule):
            raise ConfigError(f"{key}={_show(value)}; expected {EXPECTED[rule]}")


def satisfies(value: Any, rule: str) -> bool:
    """Whether ``value`` follows ``rule`` (a key of ``EXPECTED`` other than "fractions")."""
    if rule.startswith("int"):
        if isinstance(value, bool) or not isinstance(value, int):
            return False
        return value >= (1 if rule == "int>=1" else 0)
    if not _is_number(value) or not math.isfinite(value):
        return False
    if rule == "num>0":
        return value > 0
    if rule == "num>=0":
        return value >= 0
    if rule == "num>=-1":
        return value >= -1
    if rule == "[0,1)":
        return 0 <= value < 1
    return 0 <= value <= 1  # "[0,1]"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _show(value: Any) -> str:
    return repr(OmegaConf.to_container(value) if OmegaConf.is_config(value) else value)
