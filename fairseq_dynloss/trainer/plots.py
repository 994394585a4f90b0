"""PNG plots of a run: the training objective, validation loss vs test metric over training (ALA
Figure 5) and Phi - I heatmaps. Written atomically with matplotlib's Agg backend."""

from __future__ import annotations

from typing import Dict, List

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import torch  # noqa: E402

from fairseq_dynloss.atomic_save import atomic_write  # noqa: E402


def _save(fig, path: str) -> None:
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight"))
    plt.close(fig)


def plot_curves(path: str, history: List[Dict[str, float]], metric: str) -> None:
    """Three panels over epochs: the training objective (its own axis: a dynamic loss is
    negative and not a cross-entropy), validation loss, and ``metric`` on validation and test."""
    epochs = [row["epoch"] for row in history]
    fig, (objective, left, right) = plt.subplots(1, 3, figsize=(14, 3.6))
    objective.plot(epochs, [row["train_loss"] for row in history])
    objective.set_xlabel("epoch")
    objective.set_ylabel("training objective")
    objective.set_title("training objective (the loss being optimised)")
    left.plot(epochs, [row["val_loss"] for row in history], label="validation")
    if any(row.get("test_loss") is not None for row in history):
        left.plot(epochs, [row.get("test_loss") for row in history], label="test", alpha=0.6)
    left.set_xlabel("epoch")
    left.set_ylabel("loss")
    left.set_title("evaluation loss")
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


def plot_phi(path: str, snapshots: Dict[int, torch.Tensor], minus_identity: bool = True) -> List[int]:
    """Heatmaps of the (C, C) Phi - I at the snapshot epochs, on one diverging colour scale
    centred at 0 (red above, blue below), with integer class ticks. Snapshots equal to the
    previous one are not repeated (a fixed Phi gets one panel). Returns the epochs drawn."""
    epochs = []
    for epoch in sorted(snapshots):
        if not epochs or not torch.equal(snapshots[epoch], snapshots[epochs[-1]]):
            epochs.append(epoch)
    shown = {}
    for epoch in epochs:
        phi = snapshots[epoch].float().cpu()
        shown[epoch] = phi - torch.eye(phi.shape[0]) if minus_identity else phi
    bound = max(max(shown[e].abs().max().item() for e in epochs), 1e-12)
    fig, axes = plt.subplots(1, len(epochs), figsize=(3.2 * len(epochs) + 1.0, 3.0), squeeze=False)
    for ax, epoch in zip(axes[0], epochs):
        image = ax.imshow(shown[epoch].numpy(), vmin=-bound, vmax=bound, cmap="RdBu_r")
        if len(epochs) == 1 and len(snapshots) > 1:
            title = "Phi (unchanged in training)"
        else:
            title = f"Phi after epoch {epoch}" if epoch else "initial Phi"
        ax.set_title(title + (" - I" if minus_identity else ""))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("class j")
    axes[0][0].set_ylabel("target class i")
    fig.colorbar(image, ax=list(axes[0]))
    _save(fig, path)
    return epochs
