#!/usr/bin/env python
"""Pictures of what a teacher learned (PNG):

* Phi_t rows of chosen target tokens over the student's training progress (the slides'
  "Class Otter / Class Baby" figure): one heat map per token, progress on the vertical axis,
  classes (most frequent first) on the horizontal axis;
* the teacher's learning curve (dev objective per teacher step) from ``teacher_log.csv``.

    python scripts/plot_phi.py --teacher work/toy/checkpoints/l2t_teacher/teacher.pt \\
        --dict work/toy/data-bin/dict.tgt.txt --tokens "▁la,▁lo,▁de" \\
        --log work/toy/checkpoints/l2t_teacher/teacher_log.csv --out phi.png

* ``--run DIR`` (a ``dynloss-train`` run with ``teacher=l2t`` and a full Phi, e.g. noisy MNIST-1D):
  the Phi_t the student actually trained with at the run's Phi snapshots (``checkpoint_last.pt``),
  next to the realised label-noise matrix (``label_noise.csv``, rows normalised), and Phi's
  diagonal / off-diagonal means at every update (``teacher_states.csv``). Does the teacher put
  mass where the noise is?

    python scripts/plot_phi.py --run outputs/mnist1d-mnist1d_mlp-dynamic-seed1 --out phi_rows.png
"""

import argparse
import csv
import os

import matplotlib

matplotlib.use("Agg")
import logging  # noqa: E402

logging.getLogger("matplotlib").setLevel(logging.WARNING)  # fairseq configures the root logger
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from fairseq.data import Dictionary  # noqa: E402
from fairseq_dynloss.losses import build_phi  # noqa: E402
from fairseq_dynloss.teacher import load_teacher  # noqa: E402
from fairseq_dynloss.teacher.trajectory import phi_rows_over_training  # noqa: E402


def plot_run(run: str, out: str) -> None:
    """Phi snapshots of a dynloss-train run beside its label-noise matrix (see the docstring)."""
    checkpoint = os.path.join(run, "checkpoint_last.pt")
    if not os.path.isfile(checkpoint):
        raise SystemExit(f"plot_phi: {checkpoint} does not exist (a finished dynloss-train run with a full Phi)")
    snapshots = torch.load(checkpoint, map_location="cpu", weights_only=True).get("phi_snapshots") or {}
    if not snapshots:
        raise SystemExit(f"plot_phi: {checkpoint} holds no phi_snapshots (needs loss.parametrisation=full)")
    panels = []
    noise_path = os.path.join(run, "label_noise.csv")
    if os.path.isfile(noise_path):
        with open(noise_path) as handle:
            counts = torch.tensor([[float(v) for v in row[1:]] for row in list(csv.reader(handle))[1:]])
        panels.append(("label noise T (rows normalised)", counts / counts.sum(1, keepdim=True).clamp_min(1)))
    panels += [(f"Phi at epoch {epoch}", snapshots[epoch]) for epoch in sorted(snapshots)]
    states_path = os.path.join(run, "teacher_states.csv")
    fig, axes = plt.subplots(2, len(panels), figsize=(2.6 * len(panels), 5.6), squeeze=False)
    for ax, (title, matrix) in zip(axes[0], panels):
        image = ax.imshow(matrix.numpy(), cmap="viridis", vmin=0, vmax=1)
        ax.set_title(title, fontsize=8)
        ax.set_xlabel("j (column)", fontsize=7)
        ax.set_ylabel("i (row)", fontsize=7)
    fig.colorbar(image, ax=list(axes[0]), shrink=0.8)
    for ax in axes[1][1:]:
        ax.axis("off")
    ax = axes[1][0]
    if os.path.isfile(states_path):
        with open(states_path) as handle:
            rows = list(csv.DictReader(handle))
        updates = [int(r["update"]) for r in rows]
        for key in ("phi_diag_mean", "phi_offdiag_absmean"):
            if rows and key in rows[0]:
                ax.plot(updates, [float(r[key]) for r in rows], label=key, linewidth=0.8)
        ax.set_xlabel("student update")
        ax.legend(fontsize=7)
    else:
        ax.axis("off")
    tmp = out + ".tmp.png"
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, out)
    print(f"[plot_phi] wrote {out}")


def main(argv=None):
    parser = argparse.ArgumentParser(description="Plot a teacher's Phi_t rows and learning curve.")
    parser.add_argument("--run", help="a dynloss-train run folder (Phi snapshots vs label noise); "
                                      "no --teacher/--dict/--tokens needed")
    parser.add_argument("--teacher", help="teacher file (save_teacher / translation_l2t)")
    parser.add_argument("--dict", help="target dictionary of the student (dict.tgt.txt)")
    parser.add_argument("--tokens", help="comma-separated tokens (or ids) whose rows to draw")
    parser.add_argument("--log", help="teacher_log.csv for the learning curve")
    parser.add_argument("--steps", type=int, default=50, help="progress points")
    parser.add_argument("--out", required=True, help="output PNG")
    args = parser.parse_args(argv)
    if args.run:
        return plot_run(args.run, args.out)
    if not (args.teacher and args.dict and args.tokens):
        parser.error("--teacher, --dict and --tokens are required without --run")

    dictionary = Dictionary.load(args.dict)
    teacher = load_teacher(args.teacher, num_classes=len(dictionary))
    config = teacher.config
    phi = build_phi(config["parametrisation"], len(dictionary), rank=config.get("rank") or 1,
                    counts=list(dictionary.count), num_buckets=config.get("num_buckets") or 1)
    classes = []
    for token in args.tokens.split(","):
        index = int(token) if token.isdigit() else dictionary.index(token)
        if index == dictionary.unk() and token != dictionary.unk_word:
            raise SystemExit(f"plot_phi: token {token!r} is not in {args.dict}")
        classes.append(index)
    rows = phi_rows_over_training(teacher, phi, classes, steps=args.steps)  # (steps, k, C)
    order = torch.argsort(-torch.tensor(dictionary.count, dtype=torch.float64), stable=True)

    panels = len(classes) + (1 if args.log else 0)
    fig, axes = plt.subplots(panels, 1, figsize=(9, 2.6 * panels), squeeze=False)
    for k, index in enumerate(classes):
        ax = axes[k][0]
        data = rows[:, k, order].numpy()
        # Scale the colours to the off-diagonal entries (the diagonal, ~1, is drawn clipped).
        position = int((order == index).nonzero()[0, 0])
        off_diagonal = abs(data).copy()
        off_diagonal[:, position] = 0
        limit = max(off_diagonal.max(), 1e-6)
        image = ax.imshow(data, aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit,
                          extent=(0, len(order), 1, 0))
        ax.set_title(f"Phi_t row of {dictionary[index]!r} (id {index}; its diagonal entry clipped)")
        ax.set_ylabel("progress t/T")
        ax.set_xlabel("target class, most frequent first")
        fig.colorbar(image, ax=ax)
    if args.log:
        with open(args.log) as handle:
            log = list(csv.DictReader(handle))
        ax = axes[-1][0]
        ax.plot([int(r["teacher_step"]) for r in log], [float(r["dev_objective"]) for r in log], marker=".")
        ax.set_xlabel("teacher step")
        ax.set_ylabel("dev objective")
        ax.set_title("teacher learning curve")
    fig.tight_layout()
    tmp = args.out + ".tmp.png"
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, args.out)
    print(f"[plot_phi] wrote {args.out}")


if __name__ == "__main__":
    main()
