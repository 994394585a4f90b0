"""Class-conditional label noise on training labels: the noise matrix T and its application.

``T[i, j] = P(noisy label j | true label i)`` (C, C), row-stochastic. Kinds:

* ``none``: the identity;
* ``symmetric``: a label leaves its class with probability ``rate``, evenly to the other C - 1;
* ``pairflip``: ``i -> (i + 1) mod C`` with probability ``rate`` (Han et al. 2018's pair flip);
* ``matrix``: T read from a CSV file (C rows of C numbers), e.g. one written by
  ``scripts/make_noise_matrix.py``.

Noise is drawn with **exact counts per class**: of the ``n_i`` examples of class i, the number
relabelled j is ``n_i T[i, j]`` rounded by largest remainder, and which examples get which label is
a seeded permutation. The realised rate therefore equals the requested one up to rounding (not up
to binomial sampling noise), so every noise seed poses the same problem and seeds differ only in
which examples are corrupted.
"""

from __future__ import annotations

import csv
import dataclasses
import os
from typing import Optional

import torch

KINDS = ("none", "symmetric", "pairflip", "matrix")
ROW_SUM_TOLERANCE = 1e-6


class NoiseMatrixError(ValueError):
    """A noise matrix or noise setting that is not a valid row-stochastic C x C matrix."""


def noise_matrix(kind: str, rate: float, num_classes: int,
                 matrix_path: Optional[str] = None) -> torch.Tensor:
    """The noise transition matrix.

    Args:
        kind: none | symmetric | pairflip | matrix.
        rate: probability that a label is changed (symmetric, pairflip); must be 0 for ``none``
            and is ignored for ``matrix`` (the file says it).
        num_classes: C >= 2.
        matrix_path: CSV file of C rows of C numbers (``kind=matrix`` only).

    Returns:
        T: (C, C) float64, rows summing to 1.
    """
    if kind not in KINDS:
        raise NoiseMatrixError(f"label_noise.kind={kind!r}; valid choices: {', '.join(KINDS)}")
    if not isinstance(num_classes, int) or num_classes < 2:
        raise NoiseMatrixError(f"num_classes={num_classes!r}; label noise needs at least 2 classes")
    if kind == "matrix":
        if not matrix_path:
            raise NoiseMatrixError("label_noise.kind=matrix needs label_noise.matrix, a CSV path")
        return load_noise_matrix(matrix_path, num_classes)
    if matrix_path:
        raise NoiseMatrixError(f"label_noise.matrix={matrix_path!r} is only read with kind=matrix "
                               f"(kind is {kind!r})")
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate <= 1.0:
        raise NoiseMatrixError(f"label_noise.rate={rate!r}; expected a probability in [0, 1]")
    eye = torch.eye(num_classes, dtype=torch.float64)
    if kind == "none":
        if rate != 0:
            raise NoiseMatrixError(f"label_noise.rate={rate} with kind=none; set a kind "
                                   f"({', '.join(KINDS[1:])}) or rate 0")
        return eye
    if kind == "symmetric":
        off = (torch.ones_like(eye) - eye) * (rate / (num_classes - 1))
        return eye * (1.0 - rate) + off
    return eye * (1.0 - rate) + torch.roll(eye, 1, dims=1) * rate  # row i: rate at (i + 1) mod C


def load_noise_matrix(path: str, num_classes: int) -> torch.Tensor:
    """Read and validate a C x C row-stochastic matrix from CSV text (no header).

    Raises:
        NoiseMatrixError: naming the file and the first bad row (wrong length, a non-number, an
            entry outside [0, 1], a row sum off 1 by more than 1e-6) or the wrong row count.
    """
    if not os.path.isfile(path):
        raise NoiseMatrixError(f"label_noise.matrix={path!r}: no such file")
    with open(path, newline="") as handle:
        rows = [row for row in csv.reader(handle) if any(cell.strip() for cell in row)]
    if len(rows) != num_classes:
        raise NoiseMatrixError(f"{path}: {len(rows)} rows; expected {num_classes} (one per class)")
    values = []
    for i, row in enumerate(rows):
        if len(row) != num_classes:
            raise NoiseMatrixError(f"{path}: row {i} has {len(row)} entries; expected {num_classes}")
        try:
            numbers = [float(cell) for cell in row]
        except ValueError:
            raise NoiseMatrixError(f"{path}: row {i} holds a non-number: {row}") from None
        bad = [x for x in numbers if not 0.0 <= x <= 1.0]  # also catches nan
        if bad:
            raise NoiseMatrixError(f"{path}: row {i} has entry {bad[0]} outside [0, 1]")
        total = sum(numbers)
        if abs(total - 1.0) > ROW_SUM_TOLERANCE:
            raise NoiseMatrixError(f"{path}: row {i} sums to {total!r}; expected 1 within "
                                   f"{ROW_SUM_TOLERANCE}")
        values.append(numbers)
    return torch.tensor(values, dtype=torch.float64)


def noise_matrix_of(task_cfg, num_classes: int) -> torch.Tensor:
    """T of a task config's ``label_noise`` section (identity when the task has none)."""
    section = task_cfg.get("label_noise") if hasattr(task_cfg, "get") else None
    if section is None:
        return noise_matrix("none", 0.0, num_classes)
    return noise_matrix(section.get("kind", "none"), section.get("rate", 0.0), num_classes,
                        section.get("matrix", None))


def apply_label_noise(labels: torch.Tensor, T: torch.Tensor, seed: int) -> torch.Tensor:
    """Noisy copy of ``labels``, exact counts per class (module docstring), deterministic per seed.

    Args:
        labels: (N,) int64 true labels in [0, C).
        T: (C, C) row-stochastic noise matrix.
        seed: noise seed; the same (labels, T, seed) always gives the same noisy labels.

    Returns:
        (N,) int64 noisy labels; ``labels`` is not modified.
    """
    C = T.size(0)
    if labels.dim() != 1 or (labels.numel() and not 0 <= int(labels.min()) <= int(labels.max()) < C):
        raise NoiseMatrixError(f"labels must be (N,) class ids in [0, {C}); got shape "
                               f"{tuple(labels.shape)}")
    generator = torch.Generator().manual_seed(int(seed))
    noisy = labels.clone()
    for i in range(C):
        members = (labels == i).nonzero().squeeze(1)
        counts = _largest_remainder(T[i].double() * members.numel())
        new = torch.repeat_interleave(torch.arange(C), counts)
        noisy[members[torch.randperm(members.numel(), generator=generator)]] = new
    return noisy


def _largest_remainder(expected: torch.Tensor) -> torch.Tensor:
    """Integer counts summing to ``round(expected.sum())``, each floor or ceil of its entry."""
    floor = expected.floor()
    short = int(round(expected.sum().item())) - int(floor.sum().item())
    order = torch.argsort(expected - floor, descending=True, stable=True)
    counts = floor.long()
    counts[order[:short]] += 1
    return counts


def transition_counts(clean: torch.Tensor, noisy: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(C, C) int64 counts: entry [i, j] = examples of true class i labelled j."""
    return torch.bincount(clean * num_classes + noisy, minlength=num_classes ** 2).view(
        num_classes, num_classes)


def write_transition_counts(path: str, counts: torch.Tensor) -> None:
    """``label_noise.csv``: a header ``true,noisy_0..noisy_{C-1}`` and one row per true class
    (written atomically)."""
    from fairseq_dynloss.csv_rows import write_rows

    write_rows(path, [{"true": i, **{f"noisy_{j}": n for j, n in enumerate(row)}}
                      for i, row in enumerate(counts.tolist())])


def write_noise_matrix(path: str, T: torch.Tensor) -> None:
    """T as CSV text (C rows of C numbers, ``repr`` precision), written atomically."""
    from fairseq_dynloss.atomic_save import atomic_write

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as handle:
            csv.writer(handle).writerows([[repr(float(x)) for x in row] for row in T.tolist()])

    atomic_write(path, write)


def random_sparse_noise_matrix(num_classes: int, rate: float, seed: int,
                               max_targets: int = 2) -> torch.Tensor:
    """A random sparse asymmetric T: each class keeps ``1 - rate`` and sends ``rate`` to 1..
    ``max_targets`` other classes drawn at random, split by random weights (seeded).

    A noise pattern that neither symmetric nor pair-flip noise is, for testing methods on a
    structure they were not developed on.

    Returns:
        (C, C) float64 row-stochastic T.
    """
    if not 1 <= max_targets <= num_classes - 1:
        raise NoiseMatrixError(f"max_targets={max_targets}; expected 1..{num_classes - 1}")
    T = noise_matrix("none", 0.0, num_classes)
    if not 0.0 <= rate <= 1.0:
        raise NoiseMatrixError(f"rate={rate}; expected a probability in [0, 1]")
    generator = torch.Generator().manual_seed(int(seed))
    for i in range(num_classes):
        others = torch.tensor([j for j in range(num_classes) if j != i])
        k = int(torch.randint(1, max_targets + 1, (1,), generator=generator))
        targets = others[torch.randperm(others.numel(), generator=generator)[:k]]
        weights = torch.rand(k, generator=generator, dtype=torch.float64) + 0.5
        T[i, i] = 1.0 - rate
        T[i, targets] = rate * weights / weights.sum()
    return T


class NoisyLabels:
    """A training dataset whose labels are replaced by noisy ones; the inputs are the wrapped
    dataset's.

    Attributes:
        labels: (N,) noisy labels (what training sees).
        clean_labels: (N,) the true labels (for ``label_noise.csv`` and analysis only).
    """

    def __init__(self, dataset, noisy_labels: torch.Tensor):
        if noisy_labels.shape != dataset.labels.shape:
            raise ValueError(f"noisy labels {tuple(noisy_labels.shape)} do not match the dataset's "
                             f"{tuple(dataset.labels.shape)}")
        self.dataset, self.labels, self.clean_labels = dataset, noisy_labels, dataset.labels

    def __len__(self) -> int:
        return len(self.dataset)

    def batch(self, indices: torch.Tensor, augment: bool = False,
              generator: Optional[torch.Generator] = None):
        """The wrapped dataset's inputs of ``indices`` with their noisy labels (B,)."""
        inputs, _ = self.dataset.batch(indices, augment=augment, generator=generator)
        return inputs, self.labels[indices]


def with_label_noise(splits, task_cfg):
    """``splits`` with ``task_cfg.label_noise`` applied to the training labels only (validation and
    test stay clean). The noise depends on the labels, T and ``label_noise.seed`` only, so every
    method and training seed sees the same noisy labels.

    Returns:
        the same ``Splits`` when there is no noise, else a copy whose ``train`` is ``NoisyLabels``.
    """
    section = task_cfg.get("label_noise") if hasattr(task_cfg, "get") else None
    if section is None or (section.get("kind", "none") == "none" and not section.get("rate", 0.0)):
        return splits
    if splits.num_classes is None:
        raise NoiseMatrixError(f"task={task_cfg.get('name')} is a metric-learning task; label "
                               "noise needs a classification task")
    T = noise_matrix_of(task_cfg, splits.num_classes)
    noisy = apply_label_noise(splits.train.labels, T, section.get("seed", 0))
    return dataclasses.replace(splits, train=NoisyLabels(splits.train, noisy))


def record_label_noise(splits, out_dir: str) -> None:
    """Write ``<out_dir>/label_noise.csv`` (realised transition counts) when the training labels
    are noisy; nothing for clean labels."""
    if isinstance(splits.train, NoisyLabels):
        counts = transition_counts(splits.train.clean_labels, splits.train.labels, splits.num_classes)
        write_transition_counts(os.path.join(out_dir, "label_noise.csv"), counts)
