import pytest
from scipy import stats as scipy_stats

from fairseq_dynloss.study.report import MethodRow, paired_table, versus_paired


def rows():
    return [
        MethodRow("ce", [2.0, 2.2, 2.4], [10.0, 10.0, 10.0]),
        MethodRow("better", [1.0, 1.1, 1.2], [30.0, 30.0, 30.0]),
        MethodRow("same", [2.1, 2.3, 2.2], [10.0, 12.0, 14.0]),
    ]


def cells(table, name):
    line = next(l for l in table.splitlines() if l.startswith(f"| {name} |"))
    return [c.strip() for c in line.strip("|").split("|")]


def test_unknown_baseline():
    with pytest.raises(ValueError, match="baseline 'xx'"):
        paired_table(rows(), "xx", "m", True)


def test_versus_paired_against_scipy():
    control, method = [2.0, 2.2, 2.4, 2.1], [1.0, 1.3, 1.2, 1.4]
    note = versus_paired(MethodRow("m", method), MethodRow("fixed", control))
    p = scipy_stats.ttest_rel(method, control).pvalue
    assert note.startswith(f"vs fixed: Δ {-0.95:+.2f}, p = {p:.2g} (MDD ")


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


def verdict_rows():
    ce = [40.0, 42.0, 38.0, 41.0, 39.0]
    return [MethodRow("ce", ce),
            MethodRow("oracle", [v + 20 + 0.1 * i for i, v in enumerate(ce)]),
            MethodRow("good", [v + 5 + 0.3 * (-1) ** i for i, v in enumerate(ce)]),
            MethodRow("bad", [v - 3 + 0.2 * (-1) ** i for i, v in enumerate(ce)]),
            MethodRow("noise", [v + d for v, d in zip(ce, [1.5, -2.0, 0.5, -1.0, 0.8])])]


def test_verdict_names_the_winner_without_the_oracle_and_lists_the_rest():
    from fairseq_dynloss.study.report import verdict
    from fairseq_dynloss.study.stats import paired_comparison

    rows = verdict_rows()
    text = verdict(rows, "ce", lower_is_better=False, oracle="oracle")
    good = paired_comparison(rows[0].values, rows[2].values)
    assert text.startswith(f"**good wins**: good {good.mean_diff:+.2f} "
                           f"[{good.ci_low:+.2f}, {good.ci_high:+.2f}] against ce")
    assert "The oracle: oracle +20.20" in text
    assert "Better than ce: good +5.06" in text and "Worse: bad -2.96" in text
    noise = paired_comparison(rows[0].values, rows[4].values)
    assert noise.p_t > 0.05
    assert f"Not distinguishable from ce: noise (these seeds detect differences of {noise.mdd:.2f}" in text


def test_verdict_says_when_nothing_wins_and_respects_the_direction():
    from fairseq_dynloss.study.report import verdict

    rows = [r for r in verdict_rows() if r.name in ("ce", "bad", "noise")]
    text = verdict(rows, "ce", lower_is_better=False)
    assert text.startswith("**No method beats ce** (paired t, p < 0.05); the best mean is noise -0.04")
    # the same numbers as errors (lower is better): "bad" is now better
    flipped = verdict(rows, "ce", lower_is_better=True)
    assert flipped.startswith("**bad wins**: bad -2.96")


def test_collapses_hand_line_seeds_and_fisher_against_scipy():
    from fairseq_dynloss.study.report import collapses

    # ce: mean 84, sample std sqrt(10) -> line 84 - 2 sqrt(10) = 77.68; "m" passes it on
    # seeds 12 (10.0) and 14 (77.0, just under), "ok" never.
    seeds = [11, 12, 13, 14, 15]
    text = collapses([MethodRow("ce", [80.0, 82.0, 84.0, 86.0, 88.0]),
                      MethodRow("m", [85.0, 10.0, 78.0, 77.0, 90.0]),
                      MethodRow("ok", [80.0, 79.0, 78.0, 81.0, 82.0])],
                     "ce", seeds, lower_is_better=False)
    p = scipy_stats.fisher_exact([[2, 3], [0, 5]])[1]
    assert text.startswith("Collapse line (ce's mean - 2 std = 77.68); seeds past it: ce 0/5; ")
    assert f"m 2/5 (seeds 12, 14), Fisher p = {p:.3f}; ok 0/5." in text


def test_collapses_lower_is_better_and_unpaired_rows():
    from fairseq_dynloss.study.report import collapses

    # error %: mean 2.4, std sqrt(0.1) -> line 3.03; 3.1 and 3.5 are past it, 2.0 is not
    text = collapses([MethodRow("ce", [2.0, 2.2, 2.4, 2.6, 2.8]),
                      MethodRow("m", [2.0, 3.1, 2.5, 3.5, 2.4])], "ce", [1, 2, 3, 4, 5], True)
    assert "(ce's mean + 2 std = 3.03)" in text and "m 2/5 (seeds 2, 4)" in text
    with pytest.raises(ValueError, match="row 'm' has 2 values for 3 seeds"):
        collapses([MethodRow("ce", [1.0, 2.0, 3.0]), MethodRow("m", [1.0, 2.0])], "ce",
                  [1, 2, 3], False)
