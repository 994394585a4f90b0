import pytest
from scipy import stats as scipy_stats

from fairseq_dynloss.study.report import MethodRow, method_table


def rows():
    return [
        MethodRow("ce", [2.0, 2.2, 2.4], [10.0, 10.0, 10.0]),
        MethodRow("better", [1.0, 1.1, 1.2], [30.0, 30.0, 30.0]),
        MethodRow("same", [2.1, 2.3, 2.2], [10.0, 12.0, 14.0]),
        MethodRow("missing", [], [], note="not run"),
    ]


def cells(table, name):
    line = next(l for l in table.splitlines() if l.startswith(f"| {name} |"))
    return [c.strip() for c in line.strip("|").split("|")]


def test_table_values_against_hand_computation():
    table = method_table(rows(), "ce", "test error %", lower_is_better=True)
    ce = cells(table, "ce")
    assert ce[:4] == ["ce", "3", "2.20 ± 0.20", "—"] and ce[6] == "1.00"
    better = cells(table, "better")
    p = scipy_stats.ttest_ind([1.0, 1.1, 1.2], [2.0, 2.2, 2.4], equal_var=False).pvalue
    assert better[2] == "1.10 ± 0.10" and better[3] == "-1.10"
    assert better[4] == (f"{p:.3f}" if p >= 0.001 else f"{p:.1e}")
    assert better[5] == "yes" and better[6] == "3.00"
    same = cells(table, "same")
    assert same[5] == "n.s." and same[6] == "1.20"
    assert cells(table, "missing")[1:3] == ["0", "—"]


def test_higher_is_better_flips_the_verdict():
    table = method_table(rows(), "ce", "BLEU", lower_is_better=False)
    assert cells(table, "better")[5] == "no"


def test_unknown_baseline():
    with pytest.raises(ValueError, match="baseline 'xx'"):
        method_table(rows(), "xx", "m", True)


def test_paired_table_against_scipy_and_hand_gap():
    from fairseq_dynloss.study.report import paired_table

    ce = [40.0, 42.0, 38.0, 41.0]
    method = [45.0, 46.0, 44.0, 47.0]
    oracle = [60.0, 61.0, 59.0, 60.0]
    table = paired_table([MethodRow("ce", ce, [10.0] * 4), MethodRow("m", method, [20.0] * 4),
                          MethodRow("oracle", oracle, [10.0] * 4)],
                         "ce", "accuracy %", lower_is_better=False, oracle="oracle")
    m = cells(table, "m")
    diffs = [b - a for a, b in zip(ce, method)]
    p = scipy_stats.ttest_rel(method, ce).pvalue
    assert m[3] == f"{sum(diffs) / 4:+.2f} ± {scipy_stats.tstd(diffs):.2f}"
    assert m[5] == (f"{p:.3f}" if p >= 0.001 else f"{p:.1e}")
    assert m[6] == f"{scipy_stats.wilcoxon(diffs).pvalue:.3f}"
    assert m[8] == "yes"
    # gap closed = (45.5 - 40.25) / (60 - 40.25), by hand
    assert m[9] == f"{100 * 5.25 / 19.75:.0f} %" and m[10] == "2.00"
    assert cells(table, "oracle")[9] == "100 %"


def test_paired_table_refuses_unpaired_rows():
    from fairseq_dynloss.study.report import paired_table

    with pytest.raises(ValueError, match="same seeds"):
        paired_table([MethodRow("ce", [1.0, 2.0, 3.0]), MethodRow("m", [1.0, 2.0])], "ce", "x",
                     lower_is_better=True)
