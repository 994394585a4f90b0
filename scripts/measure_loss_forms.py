#!/usr/bin/env python
"""How each form of the dynamic loss reacts when Phi leaves the identity, on a confident student.

The student: the digits MLP (hidden 500-300) trained with cross-entropy (Adam lr 1e-3, batch 64,
``--epochs`` epochs, seed 0), so that its training images are fitted with log p_y near 0 and the
other classes' log p around -20 (the situation of docs/investigation.md 2d). On its training
images, for ``Phi(a) = I + a O`` with ``a`` from 0 to 1 and two off-diagonal patterns O
(``uniform``: every off-diagonal entry; ``pairflip``: entry (i, i+1 mod C)), it reports per form

* ``saturated``: the share of images with ``|s u| > 4`` (the criterion's ``sigmoid_sat``; the
  sigmoid's slope is then below 0.018 of its 0.25 at 0) -- paper form only;
* ``off``: the share of images whose Phi-term logit gradient fell below 1 % of its size at Phi = I
  (form-independent "the Phi term switched itself off");
* ``share``: mean ``phi_grad_share`` with the study's NLL mix a = 0.5 (0.5 = the Phi term pulls as
  hard as the NLL half; 0 = the student trains on the NLL half alone);
* ``ratio``: median ``phi_grad_ratio``, the Phi term's logit gradient over cross-entropy's.

The paper form is measured at its fairseq / dynloss-train default scale 1/sqrt(C) and at s = 1
(the study's setting), with both signs of ``a`` (ALA's actions move entries either way); the prob
form only with ``a >= 0`` (it needs Phi >= 0).

Usage:
    OMP_NUM_THREADS=1 python scripts/measure_loss_forms.py --plot docs/img/loss_forms.png
"""

from __future__ import annotations

import argparse
import math
from typing import Dict, List

import torch
import torch.nn.functional as F

from fairseq_dynloss.data.digits import load_digits_splits
from fairseq_dynloss.losses import FullPhi, dynamic_loss
from fairseq_dynloss.vision import MLP

AMOUNTS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
NLL_WEIGHT = 0.5


def confident_student(epochs: int, seed: int = 0):
    """Train the digits MLP with CE; return its training-set logits (N, C) and labels (N,)."""
    torch.manual_seed(seed)
    splits = load_digits_splits()
    images, labels = splits.train.images, splits.train.labels
    net = MLP(splits.input_shape, splits.num_classes)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for batch in torch.randperm(len(labels), generator=generator).split(64):
            optimizer.zero_grad()
            F.cross_entropy(net(images[batch]), labels[batch]).backward()
            optimizer.step()
    with torch.no_grad():
        return net(images), labels


def off_diagonal(pattern: str, num_classes: int) -> torch.Tensor:
    eye = torch.eye(num_classes)
    if pattern == "uniform":
        return torch.ones(num_classes, num_classes) - eye
    return torch.roll(eye, 1, dims=1)


def measure(lprobs, target, matrix, form: str, scale: float) -> Dict[str, torch.Tensor]:
    phi = FullPhi(matrix.size(0))
    phi.load_tensors({"matrix": matrix}, form=form)
    out = dynamic_loss(lprobs, target, phi, scale=scale, nll_weight=NLL_WEIGHT, form=form,
                       reduce=False, measure_gradient=True)
    return {"arg": out.sigmoid_arg, "share": out.phi_grad_share, "ratio": out.phi_grad_ratio}


def sweep(lprobs, target) -> List[dict]:
    num_classes = lprobs.size(1)
    eye = torch.eye(num_classes)
    settings = [("paper", 1 / math.sqrt(num_classes), +1), ("paper", 1 / math.sqrt(num_classes), -1),
                ("paper", 1.0, +1), ("paper", 1.0, -1), ("prob", 1.0, +1)]
    rows = []
    for pattern in ("uniform", "pairflip"):
        for form, scale, sign in settings:
            reference = measure(lprobs, target, eye, form, scale)["ratio"]
            for amount in AMOUNTS:
                got = measure(lprobs, target, eye + sign * amount * off_diagonal(pattern, num_classes),
                              form, scale)
                rows.append({
                    "pattern": pattern, "form": form, "scale": scale, "sign": sign, "a": sign * amount,
                    "saturated": (got["arg"].abs() > 4).double().mean().item() if form == "paper" else None,
                    "off": (got["ratio"] < 0.01 * reference).double().mean().item(),
                    "share": got["share"].mean().item(),
                    "ratio": got["ratio"].median().item(),
                })
    return rows


def label(row) -> str:
    if row["form"] == "prob":
        return "prob"
    scale = "1/sqrt(C)" if row["scale"] < 1 else "1"
    return f"paper s={scale} {'+' if row['sign'] > 0 else '-'}a"


def markdown(rows: List[dict]) -> str:
    lines = ["| Phi_off pattern | form | a | saturated | switched off | share (NLL 0.5) | ratio to CE |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        sat = "-" if row["saturated"] is None else f"{100 * row['saturated']:.0f} %"
        lines.append(f"| {row['pattern']} | {label(row)} | {row['a']:+g} | {sat} | "
                     f"{100 * row['off']:.0f} % | {row['share']:.3f} | {row['ratio']:.2e} |")
    return "\n".join(lines)


def plot(rows: List[dict], path: str) -> None:
    """Three panels against |a|; the paper form's -a rows are left out (the table shows they
    match its +a rows)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    styles = {"uniform": "-", "pairflip": "--"}
    colours = {}
    for pattern in styles:
        for name in dict.fromkeys(label(r) for r in rows if r["sign"] > 0):
            mine = [r for r in rows if r["pattern"] == pattern and label(r) == name]
            amounts = [abs(r["a"]) for r in mine]
            colour = colours.setdefault(name, f"C{len(colours)}")
            for ax, key, scale in ((axes[0], "off", 100), (axes[1], "share", 1), (axes[2], "ratio", 1)):
                values = [max(scale * r[key], 1e-12) for r in mine]
                ax.plot(amounts, values, styles[pattern], marker="o", color=colour,
                        label=f"{name}, {pattern} O")
    axes[0].set_title("Phi term switched off (% of images)", fontsize=10)
    axes[1].set_title("its share of the logit gradient (NLL weight 0.5)", fontsize=10)
    axes[2].set_title("median |d l_Phi/dz| / |d CE/dz|", fontsize=10)
    axes[2].set_yscale("log")
    for ax in axes:
        ax.set_xscale("symlog", linthresh=0.01)
        ax.set_xlim(0, 1.2)
        ax.set_xlabel("|a| in Phi = I + a O")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=3, fontsize=8)
    fig.suptitle("Dynamic-loss forms on a confident digits MLP (training images)")
    fig.tight_layout(rect=(0, 0.14, 1, 0.95))
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=40, help="CE epochs of the student")
    parser.add_argument("--plot", default=None, help="write the figure here (PNG)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    logits, target = confident_student(args.epochs)
    lprobs = F.log_softmax(logits.double(), dim=1)
    p_y = lprobs.exp()[torch.arange(len(target)), target]
    others = lprobs.masked_fill(F.one_hot(target, lprobs.size(1)).bool(), float("nan"))
    print(f"# student: digits MLP, CE, {args.epochs} epochs; {len(target)} training images, "
          f"train error {100 * (logits.argmax(1) != target).double().mean().item():.2f} %, "
          f"median p_y {p_y.median().item():.4f}, median log p of other classes "
          f"{others.nanmedian().item():.1f}")
    rows = sweep(lprobs, target)
    print(markdown(rows))
    if args.plot:
        plot(rows, args.plot)
        print(f"# figure: {args.plot}")


if __name__ == "__main__":
    main()
