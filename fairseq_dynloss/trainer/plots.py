"""PNG plots of a run: validation loss vs test metric over training (ALA Figure 5) and Phi
heatmaps. Written atomically with matplotlib's Agg backend."""

from __future__ import annotations

from typing import Dict, List

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from .checkpoint import atomic_write  # noqa: E402


def _save(fig, path: str) -> None:
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight"))
    plt.close(fig)


def plot_curves(path: str, history: List[Dict[str, float]], metric: str) -> None:
    """Two panels over epochs: validation loss, and test ``metric`` (plus validation)."""
    epochs = [row["epoch"] for row in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    left.plot(epochs, [row["train_loss"] for row in history], label="train (objective)", alpha=0.6)
    left.plot(epochs, [row["val_loss"] for row in history], label="validation")
    left.set_xlabel("epoch")
    left.set_ylabel("loss")
    left.set_title("validation loss")
    left.legend()
    for split in ("val", "test"):
        key = f"{split}_{metric}"
        if any(row.get(key) is not None for row in history):
            right.plot(epochs, [row.get(key) for row in history], label=split)
    right.set_xlabel("epoch")
    right.set_ylabel(metric)
    right.set_title(f"test {metric}")
    right.legend()
    _save(fig, path)


def plot_phi(path: str, snapshots: Dict[int, torch.Tensor]) -> None:
    """One heatmap of the (C, C) Phi per snapshot epoch, on a shared colour scale."""
    epochs = sorted(snapshots)
    low = min(snapshots[e].min().item() for e in epochs)
    high = max(snapshots[e].max().item() for e in epochs)
    fig, axes = plt.subplots(1, len(epochs), figsize=(3.2 * len(epochs), 3.0), squeeze=False)
    for ax, epoch in zip(axes[0], epochs):
        image = ax.imshow(snapshots[epoch].float().cpu().numpy(), vmin=low, vmax=high, cmap="viridis")
        ax.set_title(f"Phi after epoch {epoch}" if epoch else "initial Phi")
        ax.set_xlabel("j")
    axes[0][0].set_ylabel("target class i")
    fig.colorbar(image, ax=list(axes[0]))
    _save(fig, path)
