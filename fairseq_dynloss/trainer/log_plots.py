"""Pictures of what a teacher or controller did, drawn from its CSV log.

``plot_log(csv, png, TEACHER_PANELS)`` reads ``teacher_log.csv`` (dynloss-train or
``--task translation_l2t``), ``plot_log(csv, png, ALA_PANELS)`` reads ``ala_log.csv`` (dynloss-train
or ``--task translation_ala``). A panel names candidate columns; the first present in the file
is drawn, and a panel with none is left out, so a renamed column only needs its name added here.

    python scripts/plot_run_log.py work/teacher/teacher_log.csv teacher.png
"""

from __future__ import annotations

import argparse
import csv
import math
import os
from typing import Dict, List, Optional, Sequence, Tuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from fairseq_dynloss.atomic_save import atomic_write  # noqa: E402

# (panel title, lines); a line is (label, candidate column names, first present wins).
Panel = Tuple[str, Sequence[Tuple[str, Sequence[str]]]]

X_COLUMNS = ("update", "step", "teacher_step", "window")
TEACHER_PANELS: List[Panel] = [
    ("dev objective (after the unroll)", [("dev objective", ("dev_objective",))]),
    ("hypergradient norm", [("norm", ("hypergrad_norm", "grad_norm"))]),
    ("skipped teacher steps", [("skipped", ("skipped",))]),
    ("inner (student) loss", [("first unrolled step", ("inner_loss_first",)),
                              ("last unrolled step", ("inner_loss_last",))]),
]
ALA_PANELS: List[Panel] = [
    ("reward", [("reward", ("reward",)), ("baseline", ("baseline",))]),
    ("policy entropy (nats; ln 3 = uniform)", [("entropy", ("entropy",))]),
    ("actions per step", [("-beta", ("actions_minus",)), ("0", ("actions_zero",)),
                          ("+beta", ("actions_plus",))]),
    ("validation metric", [("metric", ("metric",)), ("window metric", ("window_metric",))]),
    ("controlled values", [("mean |W| or |Phi_ij|", ("W_mean_abs", "phi_offdiag_mean_abs", "phi_offdiag_absmean")),
                           ("min", ("W_min",)), ("max", ("W_max",))]),
]


def read_log(path: str) -> Dict[str, List[float]]:
    """The CSV's columns as floats (empty cells and text: NaN)."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    columns: Dict[str, List[float]] = {}
    for row in rows:
        for key, value in row.items():
            try:
                number = float(value)
            except (TypeError, ValueError):
                number = math.nan
            columns.setdefault(key, []).append(number)
    return columns


def _first(columns: Dict[str, List[float]], names: Sequence[str]) -> Optional[str]:
    return next((name for name in names if name in columns), None)


def plot_log(csv_path: str, png_path: str, panels: Sequence[Panel]) -> List[str]:
    """Draw one panel per entry of ``panels`` whose columns the CSV has; returns the titles
    drawn. Raises ValueError when the file has no rows or none of the panels' columns."""
    columns = read_log(csv_path)
    if not columns:
        raise ValueError(f"{csv_path} has no rows")
    x_name = _first(columns, X_COLUMNS)
    n = len(next(iter(columns.values())))
    x = columns[x_name] if x_name else list(range(1, n + 1))
    drawn = [(title, [(label, _first(columns, names)) for label, names in lines])
             for title, lines in panels]
    drawn = [(title, [(label, c) for label, c in lines if c]) for title, lines in drawn]
    drawn = [(title, lines) for title, lines in drawn if lines]
    if not drawn:
        raise ValueError(f"{csv_path} has none of the columns of the panels "
                         f"(columns: {', '.join(columns)})")
    fig, axes = plt.subplots(1, len(drawn), figsize=(3.6 * len(drawn), 3.2), squeeze=False)
    for ax, (title, lines) in zip(axes[0], drawn):
        for label, column in lines:
            points = [(a, b) for a, b in zip(x, columns[column]) if not math.isnan(b)]
            ax.plot([a for a, _ in points], [b for _, b in points], label=label,
                    marker="." if len(points) < 40 else None)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(x_name or "row")
        if len(lines) > 1:
            ax.legend(fontsize=7)
    fig.suptitle(os.path.basename(csv_path), fontsize=9, y=1.04)
    atomic_write(png_path, lambda tmp: fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight"))
    plt.close(fig)
    return [title for title, _ in drawn]


def panels_for(csv_path: str) -> Sequence[Panel]:
    """TEACHER_PANELS for a teacher log, ALA_PANELS otherwise (by its columns)."""
    columns = read_log(csv_path)
    return TEACHER_PANELS if "dev_objective" in columns else ALA_PANELS


RUN_LOGS = (("teacher_log.csv", "teacher.png", TEACHER_PANELS), ("ala_log.csv", "ala.png", ALA_PANELS))


def plot_run_logs(folder: str) -> List[str]:
    """Draw ``teacher.png`` / ``ala.png`` next to the ``teacher_log.csv`` / ``ala_log.csv`` of a
    run folder (those present and not empty); returns the pictures written."""
    written = []
    for log_name, picture, panels in RUN_LOGS:
        path = os.path.join(folder, log_name)
        if os.path.exists(path) and read_log(path):
            plot_log(path, os.path.join(folder, picture), panels)
            written.append(picture)
    return written


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Plot a teacher_log.csv or ala_log.csv.")
    parser.add_argument("csv", help="teacher_log.csv or ala_log.csv")
    parser.add_argument("png", help="output picture")
    args = parser.parse_args(argv)
    print(f"{args.png}: " + ", ".join(plot_log(args.csv, args.png, panels_for(args.csv))))


if __name__ == "__main__":
    main()
