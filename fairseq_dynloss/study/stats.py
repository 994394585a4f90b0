"""Statistics over seeds: summaries, and the paired comparison of two methods run on the same
seeds (paired t, Wilcoxon signed-rank, bootstrap CI, minimum detectable difference)."""

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


# -- paired designs: every method runs the same seeds, so compare per-seed differences ----------

BOOTSTRAP_RESAMPLES = 10_000
POWER = 0.8
ALPHA = 0.05


@dataclass(frozen=True)
class PairedResult:
    """A method against a baseline over the same seeds; differences are ``method - baseline``.

    Attributes:
        n: number of pairs (seeds).
        mean_diff, std_diff: mean and sample std (ddof=1) of the per-seed differences.
        t, p_t: paired t statistic (df n - 1) and its two-sided p-value
            (``scipy.stats.ttest_rel``).
        w, p_wilcoxon: Wilcoxon signed-rank statistic and two-sided p-value
            (``scipy.stats.wilcoxon``: zero differences dropped; exact, or an exhaustive sign-flip
            permutation when there are ties, up to 13 non-zero pairs; above, ties use 9999 seeded
            sign flips).
        ci_low, ci_high: 95 % percentile-bootstrap CI of the mean difference (seeded resampling
            of the seeds' differences).
        mdd: minimum detectable difference: the smallest true mean difference the paired t-test
            (two-sided alpha 0.05) detects with 80 % power, at this n and std_diff.
    """

    n: int
    mean_diff: float
    std_diff: float
    t: float
    p_t: float
    w: float
    p_wilcoxon: float
    ci_low: float
    ci_high: float
    mdd: float


def paired_comparison(baseline: Sequence[float], method: Sequence[float], seed: int = 0) -> PairedResult:
    """Paired statistics of ``method`` against ``baseline`` (same order of seeds in both).

    Args:
        baseline, method: one value per seed, at least two pairs.
        seed: seed of the bootstrap (and of any sampled permutation test).
    """
    import numpy as np

    if len(baseline) != len(method) or len(baseline) < 2:
        raise ValueError(f"paired_comparison needs two equally long lists of >= 2 values (one per "
                         f"seed); got {len(baseline)} and {len(method)}")
    diffs = np.asarray(method, dtype=np.float64) - np.asarray(baseline, dtype=np.float64)
    if not np.all(np.isfinite(diffs)):
        raise ValueError(f"paired_comparison got non-finite values: differences {diffs.tolist()}")
    summary = summarize(diffs.tolist())
    t, p_t = paired_t_test(diffs)
    w, p_w = wilcoxon_signed_rank(diffs, seed)
    low, high = bootstrap_mean_ci(diffs, seed)
    return PairedResult(summary.n, summary.mean, summary.std, t, p_t, w, p_w, low, high,
                        minimum_detectable_difference(summary.std, summary.n))


def paired_t_test(diffs) -> tuple:
    """(t, two-sided p) of mean(diffs) == 0; zero variance: p = 1 (all zero) or 0 (a constant
    non-zero difference every seed reproduces): seeded CPU runs can repeat exactly."""
    s = summarize([float(d) for d in diffs])
    if s.std == 0:
        return (0.0, 1.0) if s.mean == 0 else (math.copysign(math.inf, s.mean), 0.0)
    t = s.mean / (s.std / math.sqrt(s.n))
    return t, min(1.0, 2.0 * float(student_t.sf(abs(t), s.n - 1)))


def wilcoxon_signed_rank(diffs, seed: int = 0) -> tuple:
    """(statistic, two-sided p) of ``scipy.stats.wilcoxon`` (see ``PairedResult``); all-zero
    differences: (0, 1)."""
    import numpy as np
    from scipy import stats

    nonzero = np.abs(np.asarray(diffs, dtype=np.float64))
    nonzero = nonzero[nonzero > 0]
    if nonzero.size == 0:
        return 0.0, 1.0
    method = "auto"
    if nonzero.size > 13 and np.unique(nonzero).size < nonzero.size:
        # scipy would draw its sign flips from an unseeded generator: seed them
        method = stats.PermutationMethod(n_resamples=9999, rng=np.random.default_rng(seed))
    result = stats.wilcoxon(diffs, zero_method="wilcox", method=method)
    return float(result.statistic), float(result.pvalue)


def bootstrap_mean_ci(diffs, seed: int = 0, level: float = 0.95,
                      resamples: int = BOOTSTRAP_RESAMPLES) -> tuple:
    """Percentile-bootstrap CI of the mean of ``diffs``: ``resamples`` seeded draws of n values
    with replacement; the (1 - level) / 2 and (1 + level) / 2 quantiles of their means."""
    import numpy as np

    diffs = np.asarray(diffs, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = diffs[rng.integers(0, diffs.size, size=(resamples, diffs.size))].mean(axis=1)
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def paired_t_power(effect: float, n: int, alpha: float = ALPHA) -> float:
    """Power of the two-sided paired t-test (df n - 1) when the true mean difference is
    ``effect`` standard deviations of the differences.

    With T = (Z + nc) / sqrt(V / df), nc = effect sqrt(n), V ~ chi2(df):
    power = E_V[Phi(nc - c sqrt(V/df)) + Phi(-nc - c sqrt(V/df))], c the t critical value;
    integrated over V directly (scipy's noncentral t loses accuracy at df = 1).
    """
    from scipy import integrate
    from scipy.stats import chi2, norm

    df = n - 1
    c = float(student_t.ppf(1 - alpha / 2, df))
    nc = effect * math.sqrt(n)

    def integrand(v: float) -> float:
        scale = c * math.sqrt(v / df)
        return chi2.pdf(v, df) * (norm.cdf(nc - scale) + norm.cdf(-nc - scale))

    # split at the chi2 mode region so quad sees the mass
    value = sum(integrate.quad(integrand, a, b, limit=200)[0]
                for a, b in ((0.0, df), (df, 10.0 * df + 50.0), (10.0 * df + 50.0, math.inf)))
    return min(1.0, value)


def minimum_detectable_difference(std_diff: float, n: int, power: float = POWER,
                                  alpha: float = ALPHA) -> float:
    """The smallest true mean difference that a paired t-test on ``n`` pairs (two-sided
    ``alpha``) detects with probability ``power``, when the differences have std ``std_diff``.

    Exact (noncentral t via ``paired_t_power``), solved by bisection; 0 when std_diff is 0 and
    nan when it is nan (one seed).
    """
    from scipy.optimize import brentq

    if n < 2:
        raise ValueError(f"minimum_detectable_difference needs n >= 2 pairs; got {n}")
    if math.isnan(std_diff) or std_diff == 0:
        return std_diff
    # the normal approximation with t quantiles is within a few % for n >= 3; bracket around it
    guess = (student_t.ppf(1 - alpha / 2, n - 1) + student_t.ppf(power, n - 1)) / math.sqrt(n)
    high = 2.0 * guess
    while paired_t_power(high, n, alpha) < power:
        high *= 2.0
    effect = brentq(lambda d: paired_t_power(d, n, alpha) - power, 0.0, high, xtol=1e-10)
    return effect * std_diff
