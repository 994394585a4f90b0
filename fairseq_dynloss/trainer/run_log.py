"""Per-epoch run log: ``metrics.csv`` (rewritten atomically from the full history, so a resumed
run never duplicates rows) and TensorBoard scalars when ``tensorboard`` is installed."""

from __future__ import annotations

import csv
from typing import Dict, List, Optional

from fairseq_dynloss.atomic_save import atomic_write


def write_csv(path: str, history: List[Dict[str, float]]) -> None:
    """Write one row per epoch; columns in first-seen order."""
    columns: List[str] = []
    for row in history:
        columns += [key for key in row if key not in columns]

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(history)

    atomic_write(path, write)


def open_tensorboard(folder: str, enabled: bool) -> Optional[object]:
    """A ``SummaryWriter`` or None (disabled, or tensorboard not installed)."""
    if not enabled:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(folder)


def log_tensorboard(writer, row: Dict[str, float]) -> None:
    if writer is None:
        return
    for key, value in row.items():
        if key != "epoch" and value is not None:
            writer.add_scalar(key, value, row["epoch"])
    writer.flush()


def read_complete_rows(path: str) -> List[Dict[str, str]]:
    """The rows of a CSV file that a kill during an append may have cut: a last line without
    its line end, or a row with fewer or more fields than the header, is dropped."""
    with open(path, newline="") as handle:
        text = handle.read()
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]  # the torn last row
    rows = csv.DictReader(text.splitlines(keepends=True))
    return [row for row in rows if None not in row and None not in row.values()]
