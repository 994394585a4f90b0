"""Markdown tables of a seeded, paired comparison: mean ± std per method, the per-seed
difference from a baseline with its CI, paired tests and power, and time relative to the
baseline."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import List, Sequence

from scipy.stats import fisher_exact

from .stats import ALPHA, paired_comparison, summarize


@dataclass
class MethodRow:
    """One method's results over seeds.

    Attributes:
        name: the row label.
        values: the metric per seed (same seeds as the baseline row).
        seconds: time per seed, everything the method needs (teacher training included): CPU
            time for dynloss-train runs, job wall time for fairseq ones.
        note: free text for the last column.
    """

    name: str
    values: List[float]
    seconds: List[float] = field(default_factory=list)
    note: str = ""


def _fmt(value: float, digits: int) -> str:
    return "—" if math.isnan(value) else f"{value:.{digits}f}"


def _baseline(rows: Sequence[MethodRow], baseline: str):
    """(rows by name, the baseline row, its mean value, its mean seconds or nan)."""
    by_name = {row.name: row for row in rows}
    if baseline not in by_name:
        raise ValueError(f"baseline {baseline!r} is not a row; rows: {sorted(by_name)}")
    base = by_name[baseline]
    base_time = summarize(base.seconds).mean if base.seconds else float("nan")
    return by_name, base, summarize(base.values).mean, base_time


def _p_cell(p: float) -> str:
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def paired_table(rows: Sequence[MethodRow], baseline: str, metric: str, lower_is_better: bool,
                 oracle: str = "", digits: int = 2) -> str:
    """A markdown table of a paired design: every row ran the same seeds as ``baseline``.

    Per row: mean ± std; the per-seed difference from the baseline (mean ± std); its 95 %
    bootstrap CI; the paired t-test and Wilcoxon signed-rank p-values; the minimum difference the
    seeds detect at 80 % power (MDD, two-sided alpha 0.05); "better?" (yes/no only where the
    paired t-test has p < 0.05, else n.s.); the share of the baseline-to-``oracle`` gap the row
    closes (when an oracle row is named); time relative to the baseline; notes.
    """
    by_name, base, base_mean, base_time = _baseline(rows, baseline)
    gap = summarize(by_name[oracle].values).mean - base_mean if oracle in by_name else float("nan")
    arrow = "lower is better" if lower_is_better else "higher is better"
    gap_head = f" gap to {oracle} closed |" if oracle in by_name else ""
    lines = [
        f"| method | seeds | {metric} ({arrow}) | Δ vs {baseline} (per seed) | 95 % CI of Δ | "
        f"p (paired t) | p (Wilcoxon) | MDD (80 %) | better? |{gap_head} time × {baseline} | notes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|:---:|" + ("---:|" if gap_head else "") + "---:|---|",
    ]
    for row in rows:
        s = summarize(row.values)
        time_ratio = summarize(row.seconds).mean / base_time if row.seconds else float("nan")
        gap_cell = ""
        if gap_head:
            closed = (s.mean - base_mean) / gap if gap else float("nan")
            gap_cell = " — |" if row is base else f" {_fmt(100 * closed, 0)} % |"
        if row is base:
            lines.append(f"| {row.name} | {s.n} | {_fmt(s.mean, digits)} ± {_fmt(s.std, digits)} | — | "
                         f"— | — | — | — | — |{gap_cell} 1.00 | {row.note} |")
            continue
        if len(row.values) != len(base.values):
            raise ValueError(f"row {row.name!r} has {len(row.values)} seeds, the baseline "
                             f"{len(base.values)}; a paired table needs the same seeds")
        r = paired_comparison(base.values, row.values)
        verdict = "n.s." if r.p_t >= 0.05 else ("yes" if (r.mean_diff < 0) == lower_is_better else "no")
        lines.append(
            f"| {row.name} | {s.n} | {_fmt(s.mean, digits)} ± {_fmt(s.std, digits)} | "
            f"{r.mean_diff:+.{digits}f} ± {_fmt(r.std_diff, digits)} | "
            f"[{r.ci_low:+.{digits}f}, {r.ci_high:+.{digits}f}] | {_p_cell(r.p_t)} | "
            f"{_p_cell(r.p_wilcoxon)} | {_fmt(r.mdd, digits)} | {verdict} |{gap_cell} "
            f"{_fmt(time_ratio, 2)} | {row.note} |")
    return "\n".join(lines)


def versus_paired(row: MethodRow, control: MethodRow) -> str:
    """Note text: the paired difference of ``row`` from a control row, its paired t p-value and
    MDD (a learned loss must beat its controls, not only the baseline)."""
    r = paired_comparison(control.values, row.values)
    return f"vs {control.name}: Δ {r.mean_diff:+.2f}, p = {r.p_t:.2g} (MDD {r.mdd:.2f})"


def verdict(rows: Sequence[MethodRow], baseline: str, lower_is_better: bool, oracle: str = "",
            digits: int = 2) -> str:
    """The table in plain words: which method wins against ``baseline`` and by how much.

    The winner is the row (neither the baseline nor the ``oracle``, which knows what the methods
    may not) with the best mean difference; it "wins" only where the paired t-test gives
    p < 0.05, else no method beats the baseline. Then every row better and worse than the
    baseline (p < 0.05), each with its 95 % bootstrap CI, and the largest MDD of the rest: the
    size of effect this table could have missed.
    """
    by_name, base, _, _ = _baseline(rows, baseline)
    sign = -1.0 if lower_is_better else 1.0
    results = {row.name: paired_comparison(base.values, row.values)
               for row in rows if row is not base}
    cell = lambda name: (f"{name} {results[name].mean_diff:+.{digits}f} "
                         f"[{results[name].ci_low:+.{digits}f}, {results[name].ci_high:+.{digits}f}]")
    better = [n for n, r in results.items() if r.p_t < ALPHA and sign * r.mean_diff > 0]
    worse = [n for n, r in results.items() if r.p_t < ALPHA and sign * r.mean_diff < 0]
    unclear = [n for n in results if n not in better + worse]
    contenders = [n for n in results if n != oracle]
    text = []
    if contenders:
        best = max(contenders, key=lambda n: sign * results[n].mean_diff)
        if best in better:
            text.append(f"**{best} wins**: {cell(best)} against {baseline} "
                        f"(p = {_p_cell(results[best].p_t)}).")
        else:
            text.append(f"**No method beats {baseline}** (paired t, p < {ALPHA:g}); the best "
                        f"mean is {cell(best)}, p = {_p_cell(results[best].p_t)}.")
    if oracle in results:
        text.append(f"The oracle: {cell(oracle)}.")
    listed = lambda names: "; ".join(cell(n) for n in names) if names else "none"
    text.append(f"Better than {baseline}: {listed([n for n in better if n != oracle])}. "
                f"Worse: {listed(worse)}.")
    if unclear:
        mdd = max(results[n].mdd for n in unclear)
        text.append(f"Not distinguishable from {baseline}: {', '.join(unclear)} (these seeds "
                    f"detect differences of {mdd:.{digits}f} or more with 80 % power).")
    return " ".join(text)


def collapses(rows: Sequence[MethodRow], baseline: str, seeds: Sequence[int],
              lower_is_better: bool, digits: int = 2) -> str:
    """The issues' per-seed criterion in plain words: a seed *collapses* when its value is more
    than 2 std of the baseline's seeds worse than the baseline's mean (the "collapse line").

    Per row: the seeds past the line, and Fisher's exact test (two-sided) of that count against
    the baseline's own count over the same seeds -- whether a row collapses more often than the
    baseline, and how weak that test is with few seeds (with 10 seeds per row and none past the
    line for the baseline, 5 collapses are needed for p < 0.05).
    """
    by_name, base, base_mean, _ = _baseline(rows, baseline)
    for row in rows:
        if len(row.values) != len(seeds):
            raise ValueError(f"row {row.name!r} has {len(row.values)} values for "
                             f"{len(seeds)} seeds {list(seeds)}")
    sign = -1.0 if lower_is_better else 1.0
    line = base_mean - sign * 2.0 * summarize(base.values).std
    past = {row.name: [s for s, v in zip(seeds, row.values) if sign * (v - line) < 0]
            for row in rows}
    n_base = len(past[baseline])
    cells = []
    for row in rows:
        k = len(past[row.name])
        cell = f"{row.name} {k}/{len(seeds)}"
        if k:
            cell += f" (seed{'s' if k > 1 else ''} {', '.join(map(str, past[row.name]))})"
        if row is not base and (k or n_base):
            _, p = fisher_exact([[k, len(seeds) - k], [n_base, len(seeds) - n_base]])
            cell += f", Fisher p = {_p_cell(p)}"
        cells.append(cell)
    return (f"Collapse line ({baseline}'s mean {'+' if lower_is_better else '-'} 2 std = "
            f"{line:.{digits}f}); seeds past it: " + "; ".join(cells) + ".")
