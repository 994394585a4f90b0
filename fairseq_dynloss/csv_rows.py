"""CSV logs of rows (one dict a row): the one writer and reader every run log uses.

``write_rows`` rewrites a whole file atomically (``atomic_save.atomic_write``: temporary file,
fsync, rename), so a log rewritten from a run's full history after a resume never holds a row
twice and a kill never leaves half a file. ``read_complete_rows`` reads back a file that a kill
may have cut during an append (``teacher_states.csv`` is appended to between rewrites).
"""

from __future__ import annotations

import csv
from typing import Dict, List, Sequence

from .atomic_save import atomic_write


def write_rows(path: str, rows: Sequence[Dict]) -> None:
    """Write ``rows`` to the CSV file ``path`` (its folder created if needed), atomically.

    Columns are the rows' keys in first-seen order; a row without a column leaves it empty.
    """
    columns: List[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)

    atomic_write(path, write)


def read_complete_rows(path: str) -> List[Dict[str, str]]:
    """The rows of a CSV file that a kill during an append may have cut: a last line without
    its line end, or a row with fewer or more fields than the header, is dropped."""
    with open(path, newline="") as handle:
        text = handle.read()
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]  # the torn last row
    rows = csv.DictReader(text.splitlines(keepends=True))
    return [row for row in rows if None not in row and None not in row.values()]
