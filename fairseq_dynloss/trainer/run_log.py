"""Per-epoch TensorBoard scalars when ``tensorboard`` is installed (``metrics.csv`` is written by
``csv_rows.write_rows``, rewritten atomically from the full history)."""

from __future__ import annotations

from typing import Dict, Optional

__all__ = ["open_tensorboard", "log_tensorboard"]


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
