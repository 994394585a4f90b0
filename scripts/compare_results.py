"""Compare two RESULTS.md files row by row: does a re-run reproduce the reported numbers?

For every table heading and method present in both files, prints the two "mean ± std" cells,
the difference of the means and whether it lies within the reported spread: |Δ| <= the larger
of the two sample stds (issue 8's criterion "the numbers match a re-run within the reported
std"). Rows or tables in only one file are listed, not compared. Exit status 1 when a compared
row is outside its std, 0 otherwise.

    python scripts/compare_results.py RESULTS.md /path/to/rerun/RESULTS.md
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Dict, List, Tuple

_CELL = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*±\s*(\d+(?:\.\d+)?)\s*$")

Table = Dict[str, Tuple[float, float]]  # method -> (mean, std)


def parse_results(text: str) -> Dict[str, Table]:
    """``### heading`` -> {method: (mean, std)} from the first "mean ± std" cell of each row, for
    tables with a "seeds" column (the study's; quoted paper tables have none)."""
    tables: Dict[str, Table] = {}
    heading, header = None, None
    for line in text.splitlines():
        if line.startswith("#"):
            heading = line[4:].strip() if line.startswith("### ") else None
            header = None
            continue
        if heading is None or not line.startswith("|"):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if header is None:
            header = cells
        if "seeds" not in header:  # a table of quoted numbers (the papers'), not of a study
            continue
        for cell in cells[1:]:
            match = _CELL.match(cell)
            if match:
                tables.setdefault(heading, {})[cells[0]] = (float(match[1]), float(match[2]))
                break
    return tables


def compare(first: Dict[str, Table], second: Dict[str, Table]) -> Tuple[List[str], int]:
    """Report lines and the number of compared rows whose means differ by more than the
    larger std."""
    lines, outside = [], 0
    for heading in first:
        if heading not in second:
            lines.append(f"only in the first file: {heading}")
            continue
        lines.append(f"## {heading}")
        for method, (mean_a, std_a) in first[heading].items():
            if method not in second[heading]:
                lines.append(f"  {method:18s} only in the first file")
                continue
            mean_b, std_b = second[heading][method]
            delta, spread = mean_b - mean_a, max(std_a, std_b)
            inside = abs(delta) <= spread
            outside += not inside
            lines.append(f"  {method:18s} {mean_a:8.2f} ± {std_a:5.2f}  vs {mean_b:8.2f} ± {std_b:5.2f}"
                         f"  Δ {delta:+7.2f}  {'within std' if inside else 'OUTSIDE std'}")
        for method in second[heading]:
            if method not in first[heading]:
                lines.append(f"  {method:18s} only in the second file")
    lines += [f"only in the second file: {h}" for h in second if h not in first]
    return lines, outside


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first")
    parser.add_argument("second")
    args = parser.parse_args()
    tables = []
    for path in (args.first, args.second):
        with open(path, encoding="utf-8") as handle:
            parsed = parse_results(handle.read())
        if not parsed:
            sys.exit(f"{path}: no '### heading' tables with 'mean ± std' cells; expected a RESULTS.md")
        tables.append(parsed)
    lines, outside = compare(*tables)
    print("\n".join(lines))
    compared = sum(len(set(t) & set(tables[1].get(h, {}))) for h, t in tables[0].items())
    print(f"\n{compared} rows compared, {outside} outside the reported std")
    sys.exit(1 if outside else 0)


if __name__ == "__main__":
    main()
