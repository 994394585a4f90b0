"""Parametrisations of the loss-coefficient matrix Phi (C x C) of the dynamic loss.

Every parametrisation answers two questions without materialising the C x C matrix when C is a
translation vocabulary:

* ``row_dot(lprobs, target)``: ``u[n] = Phi[target[n], :] . lprobs[n, :]``, the paper form's
  argument (docs/design.md §3.1, ``form="paper"``);
* ``col_dot(probs, target)``: ``(probs[n] @ M)[target[n]] = sum_j probs[n, j] M[j, target[n]]``,
  the probability form's (``form="prob"``, ``losses/prob_form.py``). M is ``prob_matrix()``: Phi
  itself for ``full`` and ``diag_lowrank``; for ``bucketed`` the bucket block is divided by the
  size of the bucket summed over (a per-bucket *mean* of the probabilities, so an entry of B
  means the same whatever the bucket's size).

* ``full``          -- dense ``Phi`` (C, C). For classification (C up to ~1000).
* ``diag_lowrank``  -- ``Phi = diag(d) + U V^T`` with ``U, V`` (C, r): O(C r) per token.
* ``bucketed``      -- classes grouped into G buckets, ``Phi_ij = d_i [i=j] + B[g(i), g(j)]``:
                       O(C) per token, and a G x G matrix for the ALA state.

The tensors are persistent buffers by default (``learnable=False``): the fairseq trainer neither
optimises them nor wraps the criterion in DDP for them (c10d DDP refuses a module without
trainable parameters), and a teacher or controller swaps them functionally
(``torch.func.functional_call``) or in place. ``learnable=True`` makes them ``nn.Parameter``s.
Computations cast them to the dtype of ``lprobs`` (fairseq's ``--fp16`` halves the criterion
but computes log-probabilities in float32).
"""

from __future__ import annotations

import csv
import math
import os
from typing import Dict, Optional, Sequence, Tuple

import torch
from torch import nn

from ..atomic_save import atomic_torch_save
from ..file_checks import read_torch_file
from .full_col_dot import dense_col_dot
from .lowrank_col_dot import lowrank_col_dot_reference

PARAMETRISATIONS = ("full", "diag_lowrank", "bucketed")


class PhiError(ValueError):
    """Bad Phi configuration or Phi tensors (shape, values, options)."""


def _check_finite(name: str, tensor: torch.Tensor) -> None:
    if not torch.isfinite(tensor).all():
        bad = (~torch.isfinite(tensor)).sum().item()
        raise PhiError(f"Phi tensor '{name}' has {bad} non-finite values; expected all finite")


def _check_real_dense(name: str, tensor: torch.Tensor) -> None:
    # copy_ would silently drop an imaginary part or densify a sparse tensor.
    if tensor.layout != torch.strided:
        raise PhiError(f"Phi tensor '{name}' has layout {tensor.layout}; expected a dense tensor")
    if tensor.is_complex() or tensor.dtype == torch.bool:
        raise PhiError(f"Phi tensor '{name}' is {tensor.dtype}; expected real numbers")


def _check_shape(name: str, tensor: torch.Tensor, expected: Sequence[int]) -> None:
    if tuple(tensor.shape) != tuple(expected):
        raise PhiError(
            f"Phi tensor '{name}' has shape {tuple(tensor.shape)}; expected {tuple(expected)}"
        )


class Phi(nn.Module):
    """Base class. Subclasses define ``row_dot``, ``materialize`` and ``col_dot`` or ``col_factors``.

    Attributes:
        num_classes: C, the number of classes (vocabulary size for translation).
        parametrisation: one of ``PARAMETRISATIONS``.
    """

    parametrisation: str = ""
    tensor_names: tuple = ()

    def __init__(self, num_classes: int):
        super().__init__()
        if num_classes <= 0:
            raise PhiError(f"num_classes={num_classes}; expected a positive integer")
        self.num_classes = int(num_classes)

    def _register(self, name: str, value: torch.Tensor, learnable: bool) -> None:
        if learnable:
            self.register_parameter(name, nn.Parameter(value))
        else:
            self.register_buffer(name, value)

    def row_dot(self, lprobs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``u[n] = Phi[target[n]] . lprobs[n]``.

        Args:
            lprobs: (N, C) log-probabilities.
            target: (N,) class ids in [0, C).
        Returns:
            (N,) tensor.
        """
        raise NotImplementedError

    def col_dot(self, probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``c[n] = sum_j probs[n, j] M[j, target[n]]`` with ``M = prob_matrix()``.

        The default uses ``col_factors`` (``M = diag(d) + L R^T``): O(C k) per token.

        Args:
            probs: (N, C) non-negative weights (probabilities).
            target: (N,) class ids in [0, C).
        Returns:
            (N,) tensor.
        """
        factors = self.col_factors(target, probs.dtype)
        if factors is None:
            raise NotImplementedError(f"{type(self).__name__} defines neither col_dot nor col_factors")
        return lowrank_col_dot_reference(probs, target, *factors)

    def col_factors(self, target: torch.Tensor,
                    dtype: torch.dtype) -> Optional[Tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """``(d[y], L, R[y])`` with ``prob_matrix() = diag(d) + L R^T``, or None without that
        structure (``full``). The prob form then runs ``losses.lowrank_col_dot`` on them.

        Args:
            target: (N,) class ids y in [0, C).
            dtype: the dtype to cast the tensors to (that of the log-probabilities).
        Returns:
            ``diag_y`` (N,), ``left`` (C, k), ``right_y`` (N, k), differentiable in this Phi's
            tensors; or None.
        """
        return None

    def forward(self, lprobs: torch.Tensor, target: torch.Tensor, form: str = "paper") -> torch.Tensor:
        """``row_dot`` (paper) or ``log (p^T M)_y`` (prob); being ``forward`` lets
        ``torch.func.functional_call`` swap the tensors."""
        if form == "prob":
            from .prob_form import log_col_dot  # prob_form imports this module

            return log_col_dot(self, lprobs, target)
        return self.row_dot(lprobs, target)

    def check_tensors(self, tensors: Dict[str, torch.Tensor]) -> None:
        """Raise PhiError unless ``tensors`` has exactly this Phi's names and shapes."""
        if set(tensors) != set(self.tensor_names):
            raise PhiError(
                f"Phi tensors for '{self.parametrisation}' must have keys "
                f"{list(self.tensor_names)}; got {sorted(tensors)}"
            )
        for name in self.tensor_names:
            _check_shape(name, tensors[name], getattr(self, name).shape)

    def materialize(self) -> torch.Tensor:
        """The dense (C, C) matrix. Only for small C (tests, plots)."""
        raise NotImplementedError

    def prob_matrix(self) -> torch.Tensor:
        """The dense (C, C) matrix M that ``col_dot`` multiplies (``materialize`` except for
        ``bucketed``). Only for small C (tests, plots)."""
        return self.materialize()

    def diagonal(self) -> torch.Tensor:
        """(C,) diagonal of Phi, computed without materialising it."""
        raise NotImplementedError

    def prob_diagonal(self) -> torch.Tensor:
        """(C,) diagonal of ``prob_matrix()``, computed without materialising it."""
        return self.diagonal()

    def prob_column_sums(self, tensors: Optional[Dict[str, torch.Tensor]] = None) -> torch.Tensor:
        """(C,) column sums ``1^T M`` of ``prob_matrix()``, computed without materialising it.

        Args:
            tensors: defining tensors to use instead of this Phi's own (same names and shapes).
        """
        raise NotImplementedError

    def rows(self, index: torch.Tensor) -> torch.Tensor:
        """Rows ``Phi[index, :]`` as a (len(index), C) tensor, without materialising C x C."""
        index = torch.as_tensor(index, dtype=torch.long)
        off = self._rows_without_diag(index)
        eye = torch.zeros_like(off)
        eye[torch.arange(len(index)), index] = 1.0
        return off + eye * self._diag_term()[index].unsqueeze(-1)

    def _rows_without_diag(self, index: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _diag_term(self) -> torch.Tensor:
        """The explicit diagonal vector d of the parametrisation (zeros for full)."""
        return self.diag

    def tensors(self) -> Dict[str, torch.Tensor]:
        """The defining tensors, by name (what ``save_phi`` writes)."""
        return {name: getattr(self, name) for name in self.tensor_names}

    @torch.no_grad()
    def load_tensors(self, tensors: Dict[str, torch.Tensor], form: str = "paper") -> None:
        """Copy validated tensors into this Phi (shapes must match; values real and finite; for
        ``form="prob"`` also non-negative with no all-zero column, ``prob_form.check_prob_tensors``).

        Validates everything before copying anything, so a bad file changes nothing.
        """
        missing = [n for n in self.tensor_names if n not in tensors]
        extra = [n for n in tensors if n not in self.tensor_names]
        if missing or extra:
            raise PhiError(
                f"Phi tensors for '{self.parametrisation}' must have keys "
                f"{list(self.tensor_names)}; got {sorted(tensors)}"
            )
        for name in self.tensor_names:
            value = tensors[name]
            if not isinstance(value, torch.Tensor):
                raise PhiError(f"Phi tensor '{name}' is a {type(value).__name__}; expected a tensor")
            _check_real_dense(name, value)
            _check_shape(name, value, getattr(self, name).shape)
            _check_finite(name, value)
        if form == "prob":
            from .prob_form import check_prob_tensors  # prob_form imports this module

            check_prob_tensors(self, tensors)
        elif form != "paper":
            raise PhiError(f"loss form {form!r}; expected 'paper' or 'prob'")
        for name in self.tensor_names:
            getattr(self, name).copy_(tensors[name])

    @torch.no_grad()
    def statistics(self) -> Dict[str, float]:
        """Summary numbers for logs: mean diagonal, mean |off-diagonal| entry.

        Computed from the parametrisation, never from a C x C matrix, and cached until a
        tensor changes (in-place updates bump ``Tensor._version``; swaps change identity).
        """
        key = tuple((id(t), t._version) for t in self.tensors().values())
        if getattr(self, "_stats_key", None) != key:
            self._stats = {
                "phi_diag_mean": self.diagonal().mean().item(),
                "phi_offdiag_absmean": self._offdiag_abs_sum().item()
                / max(self.num_classes * (self.num_classes - 1), 1),
            }
            self._stats_key = key
        return dict(self._stats)

    def _offdiag_abs_sum(self) -> torch.Tensor:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}"


class FullPhi(Phi):
    """Dense ``Phi`` of shape (C, C)."""

    parametrisation = "full"
    tensor_names = ("matrix",)

    def __init__(self, num_classes: int, learnable: bool = False):
        super().__init__(num_classes)
        self._register("matrix", torch.eye(num_classes), learnable)

    def row_dot(self, lprobs, target):
        return (self.matrix.to(lprobs.dtype)[target] * lprobs).sum(-1)

    def col_dot(self, probs, target):
        return dense_col_dot(probs, target, self.matrix.to(probs.dtype))

    def materialize(self):
        return self.matrix

    def prob_column_sums(self, tensors=None):
        return (tensors or self.tensors())["matrix"].sum(0)

    def diagonal(self):
        return self.matrix.diagonal()

    def _rows_without_diag(self, index):
        return self.matrix[index]

    def _diag_term(self):
        return torch.zeros_like(self.matrix[0])

    def _offdiag_abs_sum(self):
        return self.matrix.abs().sum() - self.matrix.diagonal().abs().sum()


class DiagLowRankPhi(Phi):
    """``Phi = diag(d) + U V^T``; ``d`` (C,), ``U`` and ``V`` (C, r).

    ``u = d_y log p_y + U_y . (V^T log p)``: one (N, C) x (C, r) product per batch.
    Identity initialisation is ``d = 1, U = V = 0``.
    """

    parametrisation = "diag_lowrank"
    tensor_names = ("diag", "U", "V")

    def __init__(self, num_classes: int, rank: int, learnable: bool = False):
        super().__init__(num_classes)
        if not isinstance(rank, int) or rank <= 0:
            raise PhiError(f"phi rank={rank!r}; expected a positive integer")
        if rank > num_classes:
            raise PhiError(f"phi rank={rank} exceeds the number of classes {num_classes}")
        self.rank = rank
        self._register("diag", torch.ones(num_classes), learnable)
        self._register("U", torch.zeros(num_classes, rank), learnable)
        self._register("V", torch.zeros(num_classes, rank), learnable)

    def row_dot(self, lprobs, target):
        diag, U, V = (t.to(lprobs.dtype) for t in (self.diag, self.U, self.V))
        diag_term = diag[target] * lprobs.gather(-1, target.unsqueeze(-1)).squeeze(-1)
        return diag_term + (U[target] * (lprobs @ V)).sum(-1)

    def col_factors(self, target, dtype):
        # sum_j p_j (d_j [j = y] + U_j . V_y) = d_y p_y + (p^T U) . V_y: one (N, C) x (C, r) product.
        diag, U, V = (t.to(dtype) for t in (self.diag, self.U, self.V))
        return diag[target], U, V[target]

    def materialize(self):
        return torch.diag(self.diag) + self.U @ self.V.t()

    def prob_column_sums(self, tensors=None):
        t = tensors or self.tensors()
        return t["diag"] + t["V"] @ t["U"].sum(0)

    def diagonal(self):
        return self.diag + (self.U * self.V).sum(-1)

    def _rows_without_diag(self, index):
        return self.U[index] @ self.V.t()

    def _offdiag_abs_sum(self):
        # Exact |.| needs the matrix; chunk it so memory stays O(chunk x C).
        total = self.diag.new_zeros(())
        low_rank_diag = (self.U * self.V).sum(-1)
        for start in range(0, self.num_classes, 1024):
            block = self.U[start : start + 1024] @ self.V.t()
            total = total + block.abs().sum() - low_rank_diag[start : start + 1024].abs().sum()
        return total

    def extra_repr(self):
        return f"num_classes={self.num_classes}, rank={self.rank}"


class BucketedPhi(Phi):
    """``Phi_ij = d_i [i = j] + B[g(i), g(j)]``; ``d`` (C,), ``B`` (G, G), ``g`` a bucket map.

    ``u = d_y log p_y + sum_g B[g(y), g] * S_g`` with ``S_g = sum_{j in g} log p_j``.
    Identity initialisation is ``d = 1, B = 0``.

    Args:
        bucket_of: (C,) long tensor, the bucket id in [0, G) of every class.
    """

    parametrisation = "bucketed"
    tensor_names = ("diag", "B")

    def __init__(self, num_classes: int, bucket_of: torch.Tensor, learnable: bool = False):
        super().__init__(num_classes)
        bucket_of = torch.as_tensor(bucket_of, dtype=torch.long)
        _check_shape("bucket_of", bucket_of, (num_classes,))
        num_buckets = int(bucket_of.max().item()) + 1
        if bucket_of.min() < 0 or set(bucket_of.unique().tolist()) != set(range(num_buckets)):
            raise PhiError("bucket_of must use every bucket id 0..G-1 and no negative ids")
        self.num_buckets = num_buckets
        self.register_buffer("bucket_of", bucket_of, persistent=False)
        # One-hot (C, G) map: S = lprobs @ onehot is a dense GEMM, faster on CPU/GPU than a
        # scatter over the class axis and twice differentiable.
        self.register_buffer(
            "bucket_onehot", nn.functional.one_hot(bucket_of, num_buckets).float(), persistent=False
        )
        self._register("diag", torch.ones(num_classes), learnable)
        self._register("B", torch.zeros(num_buckets, num_buckets), learnable)

    def row_dot(self, lprobs, target):
        diag, B = self.diag.to(lprobs.dtype), self.B.to(lprobs.dtype)
        diag_term = diag[target] * lprobs.gather(-1, target.unsqueeze(-1)).squeeze(-1)
        bucket_sums = lprobs @ self.bucket_onehot.to(lprobs.dtype)  # (N, G)
        return diag_term + (B[self.bucket_of[target]] * bucket_sums).sum(-1)

    def col_factors(self, target, dtype):
        # M[j, y] = d_j [j = y] + B[g(j), g(y)] / |g(j)|: the label y receives B[g, g(y)] times the
        # MEAN probability of bucket g, so B's entries keep their size whatever the bucket sizes.
        # L = the (C, G) mean map (p @ L: per-bucket means), R[y] = column g(y) of B.
        diag, B = self.diag.to(dtype), self.B.to(dtype)
        return diag[target], self._bucket_mean_map(dtype), B.t()[self.bucket_of[target]]

    def _bucket_mean_map(self, dtype: torch.dtype) -> torch.Tensor:
        """(C, G) one-hot map divided by the bucket sizes: ``probs @ map`` = per-bucket means.
        Divided in ``dtype`` (the one-hot buffer is float32; 1/3 in float32 is off by 1e-8)."""
        onehot = self.bucket_onehot.to(dtype)
        return onehot / onehot.sum(0)

    def materialize(self):
        return torch.diag(self.diag) + self.B[self.bucket_of][:, self.bucket_of]

    def prob_matrix(self):
        sizes = self.bucket_onehot.sum(0).to(self.B.dtype)[self.bucket_of]  # |g(j)| per class
        return torch.diag(self.diag) + self.B[self.bucket_of][:, self.bucket_of] / sizes[:, None]

    def prob_diagonal(self):
        sizes = self.bucket_onehot.sum(0).to(self.B.dtype)[self.bucket_of]
        return self.diag + self.B[self.bucket_of, self.bucket_of] / sizes

    def prob_column_sums(self, tensors=None):
        # sum_j B[g(j), g(y)] / |g(j)| = sum_g B[g, g(y)]: each bucket's mean weighs 1 in total.
        t = tensors or self.tensors()
        return t["diag"] + t["B"].sum(0)[self.bucket_of]

    def diagonal(self):
        return self.diag + self.B[self.bucket_of, self.bucket_of]

    def _rows_without_diag(self, index):
        return self.B[self.bucket_of[index]][:, self.bucket_of]

    def _offdiag_abs_sum(self):
        sizes = self.bucket_onehot.sum(0)  # (G,)
        pair_counts = sizes[:, None] * sizes[None, :]
        dense = (self.B.abs() * pair_counts).sum()
        return dense - self.B[self.bucket_of, self.bucket_of].abs().sum()

    def extra_repr(self):
        return f"num_classes={self.num_classes}, num_buckets={self.num_buckets}"


def frequency_buckets(counts: Sequence[int], num_buckets: int) -> torch.Tensor:
    """Assign classes to ``num_buckets`` groups of (nearly) equal size by frequency rank.

    Bucket 0 holds the most frequent classes. Ties keep the class order (stable sort), so the
    result is deterministic.

    Args:
        counts: (C,) class frequencies (e.g. ``fairseq.data.Dictionary.count``).
        num_buckets: G, 1 <= G <= C.
    Returns:
        (C,) long tensor of bucket ids.
    """
    num_classes = len(counts)
    if not isinstance(num_buckets, int) or num_buckets <= 0:
        raise PhiError(f"phi buckets={num_buckets!r}; expected a positive integer")
    if num_buckets > num_classes:
        raise PhiError(
            f"phi buckets={num_buckets} exceeds the vocabulary size {num_classes}; "
            "expected at most one bucket per class"
        )
    order = torch.argsort(-torch.as_tensor(list(counts), dtype=torch.float64), stable=True)
    rank_bucket = torch.arange(num_classes) * num_buckets // num_classes
    bucket_of = torch.empty(num_classes, dtype=torch.long)
    bucket_of[order] = rank_bucket
    return bucket_of


def build_phi(
    parametrisation: str,
    num_classes: int,
    rank: int = 32,
    counts: Optional[Sequence[int]] = None,
    num_buckets: int = 8,
    learnable: bool = False,
) -> Phi:
    """Construct an identity-initialised Phi by name.

    Args:
        parametrisation: ``full``, ``diag_lowrank`` or ``bucketed``.
        num_classes: C.
        rank: r for ``diag_lowrank``.
        counts: (C,) class frequencies for ``bucketed`` (uniform counts if None).
        num_buckets: G for ``bucketed``.
        learnable: whether the tensors require grad.
    """
    if parametrisation == "full":
        return FullPhi(num_classes, learnable=learnable)
    if parametrisation == "diag_lowrank":
        return DiagLowRankPhi(num_classes, rank, learnable=learnable)
    if parametrisation == "bucketed":
        counts = [1] * num_classes if counts is None else counts
        if len(counts) != num_classes:
            raise PhiError(f"got {len(counts)} class counts for {num_classes} classes")
        return BucketedPhi(num_classes, frequency_buckets(counts, num_buckets), learnable=learnable)
    raise PhiError(
        f"unknown Phi parametrisation {parametrisation!r}; expected one of {list(PARAMETRISATIONS)}"
    )


def default_scale(num_classes: int) -> float:
    """``1 / sqrt(C)``: keeps ``s * Phi[y] . log p`` inside the sigmoid's linear range.

    See README, "Choosing the scale s".
    """
    return 1.0 / math.sqrt(num_classes)


def save_phi(phi: Phi, path: str) -> None:
    """Write ``{"parametrisation": ..., "tensors": {...}}`` loadable with ``weights_only=True``.

    Written to a temporary file first and renamed, so a failure leaves no half-written file.
    """
    payload = {
        "parametrisation": phi.parametrisation,
        "num_classes": phi.num_classes,
        "tensors": {k: v.detach().cpu().clone() for k, v in phi.tensors().items()},
    }
    atomic_torch_save(payload, path)


def load_phi_file(phi: Phi, path: str, form: str = "paper") -> None:
    """Initialise ``phi`` from a ``.pt`` file (read with ``weights_only=True``) or a ``.csv`` file.

    Accepted formats: what ``save_phi`` writes (parametrisation must match), or -- for
    ``full`` -- a bare (C, C) tensor or a CSV text of C rows of C numbers (e.g. a noise matrix T
    written by ``data.label_noise.write_noise_matrix``). Everything is validated before ``phi``
    is touched; ``form="prob"`` also refuses negative entries (``Phi.load_tensors``).
    """
    if not os.path.isfile(path):
        raise PhiError(f"Phi file {path!r} does not exist")
    if path.endswith(".csv"):
        payload = _read_phi_csv(path)
    else:
        payload = read_torch_file(path, "Phi file", PhiError)  # empty / unreadable / corrupted
    if isinstance(payload, torch.Tensor):
        if phi.parametrisation != "full":
            raise PhiError(
                f"Phi file {path!r} holds a bare tensor, which only initialises a 'full' Phi; "
                f"this Phi is '{phi.parametrisation}' (write it with fairseq_dynloss.losses.save_phi)"
            )
        payload = {"parametrisation": "full", "tensors": {"matrix": payload}}
    if not isinstance(payload, dict) or "tensors" not in payload:
        raise PhiError(
            f"Phi file {path!r} must hold a (C, C) tensor or a dict with 'parametrisation' and "
            f"'tensors'; got {type(payload).__name__}"
        )
    if payload.get("parametrisation") != phi.parametrisation:
        raise PhiError(
            f"Phi file {path!r} is for parametrisation {payload.get('parametrisation')!r}; "
            f"expected {phi.parametrisation!r}"
        )
    try:
        phi.load_tensors(payload["tensors"], form=form)
    except PhiError as err:
        raise PhiError(f"Phi file {path!r}: {err}") from err


def _read_phi_csv(path: str) -> torch.Tensor:
    """A (C, C) float64 tensor from CSV text (no header); shape and values are checked later."""
    with open(path, newline="") as handle:
        rows = [row for row in csv.reader(handle) if any(cell.strip() for cell in row)]
    if not rows or any(len(row) != len(rows) for row in rows):
        raise PhiError(f"Phi file {path!r} must hold C rows of C comma-separated numbers; got rows "
                       f"of lengths {sorted({len(row) for row in rows})} for {len(rows)} rows")
    try:
        return torch.tensor([[float(cell) for cell in row] for row in rows], dtype=torch.float64)
    except ValueError as err:
        raise PhiError(f"Phi file {path!r} holds a non-number: {err}") from None
