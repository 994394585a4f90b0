import math

import pytest

from fairseq_dynloss.study.stats import summarize


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
