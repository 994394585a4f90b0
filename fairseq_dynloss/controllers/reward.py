"""ALA rewards (slides, eq. 5):

    M_{t+1} = sum_{j=1..K} gamma^{K-j} M(f_{w^j}, D_val)       (the K updates of window t)
    r_t     = sign(M_t - M_{t+1})       for a metric where lower is better (error, loss)
    r_t     = sign(M_{t+1} - M_t)       for a metric where higher is better (AUCPR, recall, BLEU)

The latest update of a window weighs 1 and earlier ones gamma, gamma^2, ...; gamma = 1 sums.

**Per-class credit** (``ClassCredit``, an option; classification with a full Phi): the slides
reward every controlled element with the same sign, so one action's effect is buried under the
other P - 1 (MNIST-1D: 90 elements, ~300 windows per run). Element (i, j) of Phi changes the
loss of the examples of classes i and j, so it is rewarded with the sign of the change of the
reward metric *restricted to the validation examples of those classes*,

    r_t(i, j) = sign(m_t(i) + m_t(j) - m_{t-1}(i) - m_{t-1}(j))   (flipped when lower is better)

with ``m_t(c)`` the metric's mean over class c's validation examples at the end of window t
(the window-end pass that builds the confusion state; no discounted window sum). A diagonal
element (i, i) gets the sign of the change of ``m(i)``.

**Against a moving average** (``average = a > 0``, an option): the reference is not the last
window's ``M_t`` but ``A_t = a A_{t-1} + (1 - a) M_t`` (``A_1 = M_1``), so
``r_t = sign(A_t - M_{t+1})``: whether this window beat the recent level rather than the
previous window alone, whose own noise otherwise enters every reward twice (once as the
reference). ``a = 0`` is the slides' reward.
"""

from __future__ import annotations

import math
from typing import Dict, Optional, Sequence, Tuple, Union

import torch

from .errors import ControllerError, check_positive_int

LOWER, HIGHER = "lower", "higher"
METRIC_DIRECTION = {"error": LOWER, "loss": LOWER, "aucpr": HIGHER, "recall": HIGHER, "bleu": HIGHER,
                    "expected_accuracy": HIGHER}


def higher_is_better(metric: str) -> bool:
    """Direction of a reward metric by name (``recall@k`` counts as ``recall``)."""
    key = metric.split("@", 1)[0].lower() if isinstance(metric, str) else None
    if key not in METRIC_DIRECTION:
        raise ControllerError(
            f"unknown reward metric {metric!r}; expected one of {sorted(METRIC_DIRECTION)} "
            "(recall may carry '@k')"
        )
    return METRIC_DIRECTION[key] == HIGHER


_metric_higher = higher_is_better  # reward()'s argument shadows the name


def check_window(window) -> int:
    """The window size K (student updates per controller step) as an int >= 1."""
    return check_positive_int("window K", window)


def check_gamma(gamma) -> float:
    """The discount gamma as a float in (0, 1]."""
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not (0.0 < gamma <= 1.0):
        raise ControllerError(f"gamma={gamma!r}; expected a discount in (0, 1]")
    return float(gamma)


def sampled_window(window, every, gamma) -> Tuple[int, float]:
    """The (window, gamma) of a ``WindowReward`` fed the metric of every ``every``-th update only.

    Measuring after updates j = n, 2n, ..., K of each K-update window (n = ``every``, a divisor
    of K) and weighting them ``gamma^(K-j)`` as the full sum does is a window of K / n values with
    discount gamma^n between consecutive ones: a cheaper estimate of the slides' M (n = 1: the
    slides' own). ``measures_metric`` says which updates are measured.

    Raises ControllerError unless n is an integer >= 1 that divides K.
    """
    K, n = check_window(window), check_positive_int("metric_every", every)
    if K % n:
        raise ControllerError(f"metric_every={n} does not divide window K={K}; expected a divisor of K")
    return K // n, check_gamma(gamma) ** n


def measures_metric(update: int, every: int) -> bool:
    """Whether the metric is measured after ``update`` (counted from 1 at the start of training):
    the n-th, 2n-th, ... update of every window, n = ``every`` (``sampled_window``)."""
    return update % every == 0


def _check_value(name: str, value) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise ControllerError(f"{name}={value}; expected a finite metric value")
    return value


def discounted_window_metric(values: Sequence[float], gamma: float) -> float:
    """``sum_{j=1..K} gamma^{K-j} M_j`` over the K = len(values) per-update metric values."""
    gamma = check_gamma(gamma)
    values = [_check_value(f"metric value {j + 1}", v) for j, v in enumerate(values)]
    K = check_window(len(values))
    return sum(gamma ** (K - j) * m for j, m in enumerate(values, start=1))


def reward(previous: float, current: float, higher_is_better: Union[bool, str]) -> float:
    """``sign`` of the improvement from ``previous`` (M_t) to ``current`` (M_{t+1}): -1, 0 or 1.

    ``higher_is_better`` is a bool or a metric name of ``METRIC_DIRECTION``.
    """
    higher = _metric_higher(higher_is_better) if isinstance(higher_is_better, str) else higher_is_better
    if not isinstance(higher, bool):
        raise ControllerError(f"higher_is_better={higher_is_better!r}; expected a bool or a metric name")
    delta = _check_value("current", current) - _check_value("previous", previous)
    if not higher:
        delta = -delta
    return float((delta > 0) - (delta < 0))


class WindowReward:
    """Turns per-update validation metrics into one reward per window of K updates.

    ``add(value)`` after every student update; on the K-th it returns the window's reward (None
    for the very first window, which only sets M_0) and starts a new window.

    Args:
        metric: a ``METRIC_DIRECTION`` name (direction of the reward).
        window: K >= 1.
        gamma: discount in (0, 1].
        average: decay in [0, 1) of the moving-average reference (module docstring; 0: the
            previous window's metric).
    """

    def __init__(self, metric: str, window: int, gamma: float, average: float = 0.0):
        self.higher = higher_is_better(metric)
        self.metric = metric
        self.window = check_window(window)
        self.gamma = check_gamma(gamma)
        if isinstance(average, bool) or not isinstance(average, (int, float)) or not 0.0 <= average < 1.0:
            raise ControllerError(f"reward average={average!r}; expected a decay in [0, 1) (0: previous window)")
        self.average = float(average)
        self.values: list = []
        self.previous: Optional[float] = None  # M_t, the last window's metric
        self.reference: Optional[float] = None  # A_t (= M_t when average = 0)

    def add(self, value: float) -> Optional[float]:
        self.values.append(_check_value(f"{self.metric} value", value))
        if len(self.values) < self.window:
            return None
        current = discounted_window_metric(self.values, self.gamma)
        self.values = []
        r = None if self.reference is None else reward(self.reference, current, self.higher)
        self.previous = current
        self.reference = current if self.reference is None else (
            self.average * self.reference + (1.0 - self.average) * current)
        return r

    def state_dict(self) -> Dict:
        return {"metric": self.metric, "window": self.window, "gamma": self.gamma, "average": self.average,
                "values": list(self.values), "previous": self.previous, "reference": self.reference}

    def load_state_dict(self, state: Dict) -> None:
        state = {"average": 0.0, "reference": state.get("previous"), **state}  # states before the option
        for key in ("metric", "window", "gamma", "average"):
            if state.get(key) != getattr(self, key):
                raise ControllerError(
                    f"window reward state has {key}={state.get(key)!r}; expected {getattr(self, key)!r}"
                )
        self.values = [float(v) for v in state["values"]]
        self.previous = None if state["previous"] is None else float(state["previous"])
        self.reference = None if state["reference"] is None else float(state["reference"])


def class_means(values: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """The mean of per-example ``values`` (N,) over each class's examples: (C,) float64 on CPU,
    NaN for a class without examples."""
    values, labels = values.detach().double().cpu(), labels.detach().long().cpu()
    sums = torch.zeros(num_classes, dtype=torch.float64).index_add_(0, labels, values)
    counts = torch.bincount(labels, minlength=num_classes).double()
    return torch.where(counts > 0, sums / counts.clamp(min=1.0), torch.full_like(sums, math.nan))


class ClassCredit:
    """Per-element rewards from per-class metrics (module docstring, "Per-class credit").

    ``add(metrics)`` at every window end with the (C,) per-class metric; returns the (P,) rewards
    in {-1, 0, 1} of the elements (None at the first window, which only sets the reference).
    A class without validation examples (NaN) counts as unchanged.

    Args:
        metric: a ``METRIC_DIRECTION`` name (the direction).
        elements: (P, 2) controlled (i, j) class pairs.
        num_classes: C.
    """

    def __init__(self, metric: str, elements: torch.Tensor, num_classes: int):
        self.higher = higher_is_better(metric)
        self.elements = elements.long().cpu()
        if self.elements.dim() != 2 or self.elements.shape[1] != 2:
            raise ControllerError(f"elements have shape {tuple(self.elements.shape)}; expected (P, 2)")
        self.num_classes = int(num_classes)
        if self.elements.numel() and (self.elements.min() < 0 or self.elements.max() >= self.num_classes):
            raise ControllerError(f"per-class credit needs class pairs in [0, {self.num_classes}); "
                                  "a bucketed Phi's elements are buckets, not classes")
        self.previous: Optional[torch.Tensor] = None

    def add(self, metrics: torch.Tensor) -> Optional[torch.Tensor]:
        metrics = torch.as_tensor(metrics).detach().double().cpu()
        if tuple(metrics.shape) != (self.num_classes,):
            raise ControllerError(f"per-class metrics have shape {tuple(metrics.shape)}; "
                                  f"expected ({self.num_classes},)")
        if torch.isinf(metrics).any():
            raise ControllerError("per-class metrics hold an infinite value; expected finite (or NaN: "
                                  "a class without validation examples)")
        previous, self.previous = self.previous, metrics.clone()
        if previous is None:
            return None
        change = (metrics - previous).nan_to_num(0.0)  # no examples: unchanged
        i, j = self.elements[:, 0], self.elements[:, 1]
        delta = torch.where(i == j, change[i], change[i] + change[j])
        return torch.sign(delta if self.higher else -delta)

    def state_dict(self) -> Dict:
        return {"previous": None if self.previous is None else self.previous.clone()}

    def load_state_dict(self, state: Dict) -> None:
        previous = state.get("previous")
        if previous is not None and tuple(previous.shape) != (self.num_classes,):
            raise ControllerError(f"per-class credit state has shape {tuple(previous.shape)}; "
                                  f"expected ({self.num_classes},)")
        self.previous = None if previous is None else previous.double().clone()
