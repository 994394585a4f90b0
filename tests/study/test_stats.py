import math

import pytest
from scipy import stats as scipy_stats

from fairseq_dynloss.study.stats import summarize, welch_t_test


def test_summarize_hand_values():
    s = summarize([1.0, 2.0, 4.0])
    assert s.mean == pytest.approx(7 / 3)
    # sample variance: ((4/3)^2 + (1/3)^2 + (5/3)^2) / 2 = 42/18
    assert s.std == pytest.approx(math.sqrt(42 / 18))
    assert s.n == 3
    single = summarize([5.0])
    assert single.mean == 5.0 and math.isnan(single.std) and single.n == 1


def test_summarize_rejects_empty():
    with pytest.raises(ValueError, match="no values"):
        summarize([])


@pytest.mark.parametrize("a,b", [
    ([85.1, 86.0, 84.2, 85.5, 87.0], [88.0, 87.1, 89.3, 86.9, 88.8]),
    ([2.3, 2.5, 2.1], [3.0, 2.2, 2.9, 3.1, 2.7, 2.8]),
    ([0.0, 0.1], [0.0, 0.2]),
])
def test_welch_equals_scipy(a, b):
    ours = welch_t_test(a, b)
    ref = scipy_stats.ttest_ind(a, b, equal_var=False)
    assert ours.t == pytest.approx(ref.statistic, rel=1e-12)
    assert ours.p == pytest.approx(ref.pvalue, rel=1e-9)


def test_welch_zero_variance_cases():
    assert welch_t_test([1.0, 1.0], [1.0, 1.0]).p == 1.0
    same_shift = welch_t_test([1.0, 1.0, 1.0], [2.0, 2.0])
    assert same_shift.p == 0.0 and same_shift.t == -math.inf


def test_welch_needs_two_values():
    with pytest.raises(ValueError, match=">= 2 values"):
        welch_t_test([1.0], [1.0, 2.0])
