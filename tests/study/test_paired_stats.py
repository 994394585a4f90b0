"""Paired statistics against scipy, hand values and independent computations."""

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from fairseq_dynloss.study.stats import (
    bootstrap_mean_ci, minimum_detectable_difference, paired_comparison, paired_t_power,
    wilcoxon_signed_rank)

PAIRS = [
    ([68.1, 67.5, 69.0, 66.8, 68.4], [69.0, 67.9, 70.2, 66.5, 69.1]),  # no ties
    ([94.0, 93.1, 94.4, 92.8, 93.6, 94.9, 93.3, 92.7, 94.1, 93.8],
     [94.3, 93.4, 94.4, 93.4, 93.9, 95.2, 93.0, 93.3, 94.4, 94.1]),  # ties and a zero difference
    ([0.5, 0.7, 0.2, 0.9, 0.4, 0.6, 0.3, 0.8, 0.1, 0.55, 0.65, 0.35, 0.45, 0.75, 0.25, 0.85],
     [0.6, 0.8, 0.3, 0.8, 0.5, 0.7, 0.4, 0.9, 0.2, 0.55, 0.75, 0.45, 0.55, 0.85, 0.35, 0.95]),
]


@pytest.mark.parametrize("baseline, method", PAIRS)
def test_tests_match_scipy(baseline, method):
    r = paired_comparison(baseline, method)
    ref = scipy_stats.ttest_rel(method, baseline)
    assert r.t == pytest.approx(ref.statistic, rel=1e-12)
    assert r.p_t == pytest.approx(ref.pvalue, rel=1e-9)
    diffs = np.subtract(method, baseline)
    assert r.mean_diff == pytest.approx(diffs.mean(), abs=1e-12)
    assert r.std_diff == pytest.approx(diffs.std(ddof=1), rel=1e-12)
    if len(diffs) <= 13:  # exact or exhaustive: scipy's own answer is deterministic
        ref_w = scipy_stats.wilcoxon(diffs)
        assert (r.w, r.p_wilcoxon) == pytest.approx((ref_w.statistic, ref_w.pvalue), rel=1e-12)
    else:  # 16 pairs with ties: sampled sign flips, ours seeded
        approx = scipy_stats.wilcoxon(diffs, method="asymptotic")
        assert r.w == approx.statistic
        assert r.p_wilcoxon == pytest.approx(approx.pvalue, abs=0.01)
        assert paired_comparison(baseline, method, seed=0) == r


def test_wilcoxon_hand_values():
    # five positive differences: W- = 0, the exact two-sided p is 2 / 2^5
    assert wilcoxon_signed_rank([0.1, 0.4, 0.2, 0.3, 0.5]) == (0.0, 2 / 32)
    # ranks of |d| = 1..4, the negative one has rank 1: W = 1, P(W <= 1) = 2 / 16, two-sided 4/16
    assert wilcoxon_signed_rank([-0.1, 0.2, 0.3, 0.4]) == (1.0, 4 / 16)
    assert wilcoxon_signed_rank([0.0, 0.0, 0.0]) == (0.0, 1.0)


def test_zero_variance_differences():
    same = paired_comparison([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    assert (same.t, same.p_t, same.mean_diff, same.ci_low, same.ci_high, same.mdd) == \
        (0.0, 1.0, 0.0, 0.0, 0.0, 0.0)
    shifted = paired_comparison([1.0, 2.0, 3.0], [1.5, 2.5, 3.5])
    assert shifted.t == math.inf and shifted.p_t == 0.0
    assert shifted.ci_low == pytest.approx(0.5) and shifted.ci_high == pytest.approx(0.5)


def test_bootstrap_ci_is_seeded_contains_the_mean_and_agrees_with_scipy():
    rng = np.random.default_rng(1)
    diffs = rng.normal(0.8, 1.5, size=10)
    low, high = bootstrap_mean_ci(diffs, seed=3)
    assert (low, high) == bootstrap_mean_ci(diffs, seed=3) != bootstrap_mean_ci(diffs, seed=4)
    assert low < diffs.mean() < high
    ref = scipy_stats.bootstrap((diffs,), np.mean, method="percentile", n_resamples=10_000,
                                rng=np.random.default_rng(0)).confidence_interval
    width = high - low
    assert abs(low - ref.low) < 0.05 * width and abs(high - ref.high) < 0.05 * width
    # a large sample: the percentile CI approaches mean +- 1.96 sd / sqrt(n)
    big = rng.normal(0.0, 1.0, size=400)
    low, high = bootstrap_mean_ci(big, seed=0)
    half = 1.959964 * big.std(ddof=1) / math.sqrt(big.size)
    assert low == pytest.approx(big.mean() - half, abs=0.1 * half)
    assert high == pytest.approx(big.mean() + half, abs=0.1 * half)


@pytest.mark.parametrize("n", [3, 5, 10, 30])
def test_power_matches_the_noncentral_t(n):
    """Our power integral against scipy.stats.nct: P(|T| > c) with T ~ nct(n - 1, d sqrt(n))."""
    c = scipy_stats.t.ppf(0.975, n - 1)
    for effect in (0.2, 0.7, 1.5):
        nc = effect * math.sqrt(n)
        ref = scipy_stats.nct.sf(c, n - 1, nc) + scipy_stats.nct.cdf(-c, n - 1, nc)
        assert paired_t_power(effect, n) == pytest.approx(ref, abs=1e-7)
    assert paired_t_power(0.0, n) == pytest.approx(0.05, abs=1e-8)  # the size of the test


@pytest.mark.parametrize("n", [2, 3, 5, 10, 30, 1000])
def test_minimum_detectable_difference_has_80_percent_power(n):
    mdd = minimum_detectable_difference(2.0, n)
    assert paired_t_power(mdd / 2.0, n) == pytest.approx(0.8, abs=1e-8)
    # the normal approximation with t quantiles, (t_.975 + t_.8) s / sqrt(n), is close for n >= 5
    approx = (scipy_stats.t.ppf(0.975, n - 1) + scipy_stats.t.ppf(0.8, n - 1)) * 2.0 / math.sqrt(n)
    if n >= 5:
        assert mdd == pytest.approx(approx, rel=0.015)
    # and the plain normal one, (z_.975 + z_.8) s / sqrt(n), at large n
    if n == 1000:
        assert mdd == pytest.approx((1.959964 + 0.841621) * 2.0 / math.sqrt(n), rel=2e-3)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="equally long"):
        paired_comparison([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match=">= 2 values"):
        paired_comparison([1.0], [2.0])
    with pytest.raises(ValueError, match="non-finite"):
        paired_comparison([1.0, float("nan")], [2.0, 3.0])
    with pytest.raises(ValueError, match="n >= 2"):
        minimum_detectable_difference(1.0, 1)
