"""Summary statistics over seeds and Welch's unequal-variance t-test against a baseline."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from scipy.stats import t as student_t


@dataclass(frozen=True)
class Summary:
    """Mean and sample standard deviation (ddof=1; nan for one value) of ``n`` values."""

    mean: float
    std: float
    n: int


def summarize(values: Sequence[float]) -> Summary:
    """Summary of a non-empty list of finite-or-nan numbers."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("summarize() got no values; expected at least one")
    n = len(values)
    mean = sum(values) / n
    if n == 1:
        return Summary(mean, float("nan"), 1)
    variance = sum((v - mean) ** 2 for v in values) / (n - 1)
    return Summary(mean, math.sqrt(variance), n)


@dataclass(frozen=True)
class WelchResult:
    """Welch's t statistic, Welch-Satterthwaite degrees of freedom and two-sided p-value."""

    t: float
    df: float
    p: float


def welch_t_test(a: Sequence[float], b: Sequence[float]) -> WelchResult:
    """Two-sided Welch t-test of mean(a) == mean(b) (``scipy.stats.ttest_ind(equal_var=False)``).

    Seeded CPU runs can be exactly repeatable, so both samples may have zero variance: then the
    test degenerates and we return p = 1 when the means are equal and p = 0 when they differ
    (a difference that every seed reproduces), with t = 0 or +-inf.

    Args:
        a, b: at least two values each.
    """
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"welch_t_test needs >= 2 values per sample; got {len(a)} and {len(b)}")
    sa, sb = summarize(a), summarize(b)
    va, vb = sa.std ** 2 / sa.n, sb.std ** 2 / sb.n
    diff = sa.mean - sb.mean
    if va + vb == 0:
        if diff == 0:
            return WelchResult(0.0, float("nan"), 1.0)
        return WelchResult(math.copysign(math.inf, diff), float("nan"), 0.0)
    t = diff / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (sa.n - 1) + vb ** 2 / (sb.n - 1))
    p = 2.0 * float(student_t.sf(abs(t), df))
    return WelchResult(t, df, min(1.0, p))
