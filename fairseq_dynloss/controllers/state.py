"""ALA controller states from validation statistics (docs/design.md §3.4).

Classification / translation
    The confusion-style matrix ``C_ij = mean over validation examples of class i of -log p_j``
    (slides, "Instantiation on Classification"). With a bucket map ``g`` (translation: frequency
    buckets, the G x G ``B`` of a ``BucketedPhi``) the examples are grouped by the bucket of their
    target and the classes by their bucket:

        C_gh = mean over examples d with g(y_d) = g of ( mean over classes j with g(j) = h of
               -log p_j(x_d) )

    i.e. examples are pooled within a bucket (each example weighs the same) and the classes of the
    column bucket are averaged, so full and bucketed states share one scale (a uniform prediction
    gives ``log C`` everywhere in both).

    **Rows without examples.** A class (or bucket) with no validation example has no defined row.
    Its row is filled with ``empty_value`` -- by default ``log(num_classes)``, the value of the
    uniform prediction, i.e. "no information" -- and ``return_counts=True`` returns the per-row
    example counts so a caller can mask such rows instead. A validation set with no example at all
    is an error.

    Each controlled pair ``(i, j)`` gives one controller input row (``pair_features``): its
    confusion values C_ij and C_ji in log space, standardised over the window's entries, relative
    to the true class, their change since earlier windows, progress, the controlled value and a
    diagonal flag. Ordered pairs cover the slides' "[C_ij, C_ji] -> Phi(i, j) and Phi(j, i)": the
    row of ``(j, i)`` is the same pair seen from the other side and drives ``Phi(j, i)``.

Metric learning
    "Statistics of positive / negative distances" (docs/design.md §3.4): ``pair_distances`` splits the
    Euclidean distances of every validation pair into same-class (positive) and other-class
    (negative) ones; ``distance_statistics`` summarises each as mean, std and quantiles, one small
    vector; ``element_features`` turns it into one row per controlled loss parameter
    (distance-mixture weights, focal scales).
"""

from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch

from .errors import ControllerError, check_finite_tensor, check_positive_int

Matrices = Union[torch.Tensor, Sequence[torch.Tensor]]


def _check_bucket_map(buckets, num_classes: int) -> Tuple[torch.Tensor, int]:
    bucket_of = torch.as_tensor(buckets)
    if bucket_of.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        raise ControllerError(f"bucket map has dtype {bucket_of.dtype}; expected an integer tensor")
    bucket_of = bucket_of.long()
    if tuple(bucket_of.shape) != (num_classes,):
        raise ControllerError(
            f"bucket map has shape {tuple(bucket_of.shape)}; expected ({num_classes},), one bucket id per class"
        )
    num_buckets = int(bucket_of.max().item()) + 1
    if bucket_of.min() < 0 or bucket_of.unique().numel() != num_buckets:
        raise ControllerError(
            "bucket map must use every bucket id 0..G-1 and no negative id; got ids "
            f"{sorted(set(bucket_of.tolist()))[:10]}"
        )
    return bucket_of, num_buckets


class ConfusionAccumulator:
    """Streams validation batches into the confusion state (see the module docstring).

    Args:
        num_classes: C (vocabulary size for translation).
        buckets: optional (C,) integer bucket map with every id 0..G-1 used; the state is then
            G x G. ``BucketedPhi.bucket_of`` fits.

    Sums are kept in float64 on the device of the first batch; the (N, C) log-probabilities are
    reduced to (N, G) in their own precision first, so a large vocabulary costs one GEMM.
    """

    def __init__(self, num_classes: int, buckets=None):
        self.num_classes = check_positive_int("num_classes", num_classes)
        self.bucket_of: Optional[torch.Tensor] = None
        self.size = self.num_classes
        if buckets is not None:
            self.bucket_of, self.size = _check_bucket_map(buckets, self.num_classes)
        self.sums: Optional[torch.Tensor] = None
        self.counts: Optional[torch.Tensor] = None
        self.dtype = torch.float32

    def update(self, lprobs: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch: ``lprobs`` (N, C) log-probabilities, ``target`` (N,) class ids."""
        if not isinstance(lprobs, torch.Tensor) or lprobs.dim() != 2 or lprobs.shape[1] != self.num_classes:
            shape = tuple(lprobs.shape) if isinstance(lprobs, torch.Tensor) else type(lprobs).__name__
            raise ControllerError(f"lprobs has shape {shape}; expected (N, {self.num_classes})")
        if not isinstance(target, torch.Tensor) or tuple(target.shape) != (lprobs.shape[0],):
            shape = tuple(target.shape) if isinstance(target, torch.Tensor) else type(target).__name__
            raise ControllerError(f"target has shape {shape}; expected ({lprobs.shape[0]},)")
        if target.is_floating_point() or target.dtype == torch.bool:
            raise ControllerError(f"target has dtype {target.dtype}; expected integer class ids")
        if target.numel() and (target.min() < 0 or target.max() >= self.num_classes):
            raise ControllerError(
                f"target ids range over [{target.min().item()}, {target.max().item()}]; "
                f"expected ids in [0, {self.num_classes})"
            )
        check_finite_tensor("lprobs", lprobs)
        lprobs = lprobs.detach()
        if lprobs.dtype in (torch.float16, torch.bfloat16):
            lprobs = lprobs.float()
        self.dtype = lprobs.dtype
        target = target.long().to(lprobs.device)
        if self.sums is None:
            self.sums = torch.zeros(self.size, self.size, dtype=torch.float64, device=lprobs.device)
            self.counts = torch.zeros(self.size, dtype=torch.long, device=lprobs.device)
        nll = -lprobs
        rows = target
        if self.bucket_of is not None:
            bucket_of = self.bucket_of.to(lprobs.device)
            onehot = torch.nn.functional.one_hot(bucket_of, self.size).to(lprobs.dtype)
            nll = nll @ (onehot / onehot.sum(0))  # (N, G): mean -log p over each column bucket
            rows = bucket_of[target]
        self.sums.index_add_(0, rows, nll.to(torch.float64))
        self.counts += torch.bincount(rows, minlength=self.size)

    def compute(self, empty_value: Optional[float] = None, return_counts: bool = False):
        """The (n, n) state; rows without examples are ``empty_value`` (default ``log C``).

        Returns ``C`` or, with ``return_counts``, ``(C, counts)`` with ``counts`` (n,) the number
        of validation examples of each row class / bucket.
        """
        if self.counts is None or int(self.counts.sum()) == 0:
            raise ControllerError("confusion state from an empty validation set; expected >= 1 example")
        fill = math.log(self.num_classes) if empty_value is None else float(empty_value)
        present = (self.counts > 0).unsqueeze(-1)
        # one where instead of masked reads and writes (the same numbers: a row's sums / its count)
        means = self.sums / self.counts.clamp_min(1).unsqueeze(-1).to(torch.float64)
        state = torch.where(present, means, torch.full_like(means, fill)).to(self.dtype)
        return (state, self.counts.clone()) if return_counts else state


def confusion_state(lprobs: torch.Tensor, target: torch.Tensor, num_classes: int, buckets=None,
                    empty_value: Optional[float] = None, return_counts: bool = False):
    """``C_ij = mean over examples of class i of -log p_j`` (bucketed: G x G), in one call.

    Args:
        lprobs: (N, C) log-probabilities on validation examples.
        target: (N,) class ids.
        num_classes: C.
        buckets: optional (C,) bucket map (every id 0..G-1 used).
        empty_value: row value for classes / buckets without examples (default ``log C``).
        return_counts: also return the (n,) per-row example counts.
    """
    acc = ConfusionAccumulator(num_classes, buckets)
    acc.update(lprobs, target)
    return acc.compute(empty_value=empty_value, return_counts=return_counts)


def controlled_pairs(n: int, include_diagonal: bool = False, device=None) -> torch.Tensor:
    """(P, 2) long tensor of the controlled pairs ``(i, j)`` in row-major order.

    ``i != j`` (P = n (n - 1)) unless ``include_diagonal`` (P = n^2; for a bucketed Phi, whose
    ``B[g, g]`` sets the within-bucket off-diagonal entries).
    """
    n = check_positive_int("n", n)
    idx = torch.arange(n, device=device)
    pairs = torch.cartesian_prod(idx, idx).reshape(-1, 2)
    if not include_diagonal:
        pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    return pairs


def pair_feature_size(history_length: int) -> int:
    """F = 4 (level and relative hardness of C_ij, C_ji) + 2 per history matrix + 3 (progress,
    controlled value, diagonal flag)."""
    return 7 + 2 * check_positive_int("history_length", history_length, minimum=0)


def _check_progress(progress) -> float:
    progress = float(progress)
    if not 0.0 <= progress <= 1.0:
        raise ControllerError(f"progress={progress}; expected a training fraction in [0, 1]")
    return progress


def _history_list(history: Matrices) -> List[torch.Tensor]:
    if history is None:
        return []
    if isinstance(history, torch.Tensor):
        if history.dim() != 3:
            raise ControllerError(
                f"history tensor has shape {tuple(history.shape)}; expected (H, n, n)"
            )
        return list(history.unbind(0))
    return list(history)


# Why these constants: log C moves by ~0.01-0.1 per window early in training, so a z-score over
# entries of an almost constant matrix would blow noise up; Z_FLOOR (in log units) is the spread
# below which differences count as noise. Z_CLIP keeps the diagonal entries (C_ii << C_ij once the
# student is confident) and outliers inside tanh's working range.
Z_FLOOR, CHANGE_FLOOR, Z_CLIP = 0.1, 0.01, 3.0
LOG_FLOOR = 1e-6  # C is a mean of -log p >= 0; the log needs it positive


def _standardised_stack(matrices: torch.Tensor, floors: torch.Tensor) -> torch.Tensor:
    """(M, n, n) matrices, each z-scored over its own off-diagonal entries: ``(m - mean) /
    max(std, floor)`` (population std; with n = 1 over the single entry), clipped to
    [-Z_CLIP, Z_CLIP]. ``floors`` (M,)."""
    n = matrices.shape[-1]
    off = ~torch.eye(n, dtype=torch.bool, device=matrices.device) if n > 1 else \
        torch.ones(1, 1, dtype=torch.bool, device=matrices.device)
    entries = matrices[:, off]  # (M, n (n - 1))
    mean = entries.mean(-1)
    std = entries.std(-1, unbiased=False) if entries.shape[-1] > 1 else torch.zeros_like(mean)
    scale = torch.maximum(std, floors)
    return ((matrices - mean[:, None, None]) / scale[:, None, None]).clamp(-Z_CLIP, Z_CLIP)


def pair_features(C: torch.Tensor, phi_values: torch.Tensor, history: Matrices = (),
                  progress: float = 0.0, pairs: Optional[torch.Tensor] = None,
                  value_scale: float = 1.0) -> torch.Tensor:
    """Standardised controller inputs, one row per controlled pair: a (P, F) tensor, F = 7 + 2 H.

    Raw confusion values span ~2.3 (uniform prediction over 10 classes) to 8-25 (a confident
    student), which saturates tanh units initialised at +-1/sqrt(F); the policy then cannot tell
    pairs apart. Every input is therefore in log space and standardised over the off-diagonal
    entries of this window (``L = log C``; statistics over ``i != j``; z clipped to [-3, 3]):

    * ``z(L)_ij, z(L)_ji`` -- how hard class j is for examples of class i, relative to the other
      pairs of this window;
    * ``z(L_ij - L_ii), z(L_ji - L_jj)`` -- the same relative to the true class (C relative to its
      diagonal);
    * per history matrix ``Hk``: ``z(L - log Hk)`` at (i, j) and (j, i) -- which pairs changed more
      than the others since k windows ago (the common trend of training is removed);
    * ``progress`` in [0, 1];
    * ``phi_values[i, j] / value_scale`` (e.g. the clamp, so that it lies in [-1, 1]);
    * ``[i == j]`` (a diagonal element, when the diagonal is controlled).

    Args:
        C: (n, n) current confusion state (``C_ij >= 0``).
        phi_values: (n, n) the controlled values (Phi, its logits, or a bucketed Phi's W).
        history: H earlier (n, n) states, most recent first (a list or an (H, n, n) tensor); H is
            fixed for a run (``StateHistory`` pads the start of training).
        progress: training fraction in [0, 1].
        pairs: (P, 2) pairs; default ``controlled_pairs(n)`` (all i != j).
        value_scale: > 0, divides the controlled value.
    """
    if not isinstance(C, torch.Tensor) or C.dim() != 2 or C.shape[0] != C.shape[1]:
        shape = tuple(C.shape) if isinstance(C, torch.Tensor) else type(C).__name__
        raise ControllerError(f"confusion state C has shape {shape}; expected (n, n)")
    n = C.shape[0]
    check_finite_tensor("phi_values", phi_values)
    if tuple(phi_values.shape) != (n, n):
        raise ControllerError(
            f"phi_values has shape {tuple(phi_values.shape)}; expected ({n}, {n}) like the state"
        )
    if not (isinstance(value_scale, (int, float)) and math.isfinite(value_scale) and value_scale > 0):
        raise ControllerError(f"value_scale={value_scale!r}; expected a finite number > 0")
    pasts = _history_list(history)
    for k, past in enumerate(pasts):
        if not isinstance(past, torch.Tensor) or tuple(past.shape) != (n, n):
            shape = tuple(past.shape) if isinstance(past, torch.Tensor) else type(past).__name__
            raise ControllerError(f"history[{k}] has shape {shape}; expected ({n}, {n})")
    progress = _check_progress(progress)
    pairs = controlled_pairs(n, device=C.device) if pairs is None else _check_pairs(pairs, n)
    i, j = pairs[:, 0].to(C.device), pairs[:, 1].to(C.device)
    work = torch.float64
    # every matrix in one (M, n, n) stack: one finiteness check, one standardisation and one
    # gather for all of them (the per-matrix checks only name the culprit)
    stack = torch.stack([C.to(work)] + [past.to(C.device, work) for past in pasts])
    if not bool(torch.isfinite(stack).all()):
        for name, matrix in zip(["confusion state C"] + [f"history[{k}]" for k in range(len(pasts))], [C, *pasts]):
            check_finite_tensor(name, matrix)
    logs = stack.clamp_min(LOG_FLOOR).log()
    L = logs[0]
    raw = torch.cat([torch.stack([L, L - L.diagonal().unsqueeze(1)]), L - logs[1:]])
    floors = torch.tensor([Z_FLOOR, Z_FLOOR] + [CHANGE_FLOOR] * len(pasts), dtype=work, device=C.device)
    matrices = _standardised_stack(raw, floors)
    # columns: each matrix at (i, j) then at (j, i), as in the docstring's order
    looked_up = torch.stack([matrices[:, i, j], matrices[:, j, i]], dim=1).reshape(2 * len(matrices), -1).t()
    tail = torch.stack([torch.full_like(looked_up[:, 0], progress),
                        phi_values.detach().to(C.device, work)[i, j] / value_scale, (i == j).to(work)], dim=-1)
    return torch.cat([looked_up, tail], dim=-1).to(C.dtype if C.is_floating_point() else torch.float32)


def _check_pairs(pairs, n: int) -> torch.Tensor:
    pairs = torch.as_tensor(pairs)
    if pairs.dim() != 2 or pairs.shape[1] != 2 or pairs.is_floating_point():
        raise ControllerError(f"pairs has shape {tuple(pairs.shape)} / dtype {pairs.dtype}; expected (P, 2) integer ids")
    if pairs.numel() and (pairs.min() < 0 or pairs.max() >= n):
        raise ControllerError(f"pairs hold ids in [{pairs.min().item()}, {pairs.max().item()}]; expected ids in [0, {n})")
    return pairs.long()


class StateHistory:
    """The last ``length`` states (most recent first) for ``pair_features``' ``history``.

    ``matrices(current)`` always returns exactly ``length`` tensors: at the start of training,
    missing entries repeat the oldest stored state (or ``current`` when nothing is stored yet), so
    the feature size F never changes during a run.
    """

    def __init__(self, length: int):
        self.length = check_positive_int("history length", length, minimum=0)
        self.states: List[torch.Tensor] = []

    def matrices(self, current: torch.Tensor) -> List[torch.Tensor]:
        if self.length == 0:
            return []
        pad = self.states[-1] if self.states else current
        return self.states + [pad] * (self.length - len(self.states))

    def push(self, state: torch.Tensor) -> None:
        """Store the state of the window that just ended (call after building its features)."""
        if self.length:
            self.states = ([state.detach().clone()] + self.states)[: self.length]

    def state_dict(self) -> Dict:
        return {"length": self.length, "states": [s.cpu() for s in self.states]}

    def load_state_dict(self, state: Dict) -> None:
        if state.get("length") != self.length:
            raise ControllerError(
                f"state history of length {state.get('length')!r}; expected length {self.length}"
            )
        states = list(state["states"])
        if len(states) > self.length:
            raise ControllerError(f"state history holds {len(states)} states; expected at most {self.length}")
        for k, s in enumerate(states):
            check_finite_tensor(f"history state {k}", s)
        self.states = [s.clone() for s in states]


DEFAULT_QUANTILES = (0.1, 0.5, 0.9)


def pair_distances(embeddings: torch.Tensor, labels: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Euclidean distances of every pair ``i < j``, split by whether the labels agree.

    Args:
        embeddings: (N, D).
        labels: (N,) class ids.
    Returns:
        ``(positive, negative)``: 1-D tensors of the same-class and of the other-class distances
        (N (N - 1) / 2 in total), on the embeddings' device.
    """
    if not isinstance(embeddings, torch.Tensor) or embeddings.dim() != 2:
        shape = tuple(embeddings.shape) if isinstance(embeddings, torch.Tensor) else type(embeddings).__name__
        raise ControllerError(f"embeddings have shape {shape}; expected (N, D)")
    if not isinstance(labels, torch.Tensor) or tuple(labels.shape) != (embeddings.shape[0],):
        shape = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise ControllerError(f"labels have shape {shape}; expected ({embeddings.shape[0]},)")
    embeddings = embeddings.detach()
    if embeddings.dtype in (torch.float16, torch.bfloat16):
        embeddings = embeddings.float()
    i, j = torch.triu_indices(embeddings.shape[0], embeddings.shape[0], offset=1, device=embeddings.device)
    dist = torch.cdist(embeddings, embeddings)[i, j]
    same = labels.to(embeddings.device)[i] == labels.to(embeddings.device)[j]
    return dist[same], dist[~same]


def distance_statistics(positive: torch.Tensor, negative: torch.Tensor,
                        quantiles: Sequence[float] = DEFAULT_QUANTILES) -> torch.Tensor:
    """Metric-learning state: ``[mean, std, q...]`` of the positive then of the negative distances.

    Args:
        positive: distances of positive pairs (any shape, >= 1 element).
        negative: distances of negative pairs (any shape, >= 1 element).
        quantiles: levels in [0, 1] (linear interpolation, ``torch.quantile``).
    Returns:
        (2 (2 + Q),) tensor; std is the population std (0 for a single distance).
    """
    qs = [float(q) for q in quantiles]
    if any(not 0.0 <= q <= 1.0 for q in qs):
        raise ControllerError(f"quantiles={qs}; expected levels in [0, 1]")
    parts = []
    for name, d in (("positive distances", positive), ("negative distances", negative)):
        check_finite_tensor(name, d)
        d = d.detach().reshape(-1)
        if d.numel() == 0:
            raise ControllerError(f"{name}: empty; expected at least one distance")
        d = d.float() if d.dtype in (torch.float16, torch.bfloat16) else d
        stats = [d.mean(), d.std(unbiased=False)]
        if qs:
            stats += list(torch.quantile(d, torch.tensor(qs, dtype=d.dtype, device=d.device)).unbind(0))
        parts.append(torch.stack(stats))
    return torch.cat(parts)


def element_features(state: torch.Tensor, values: torch.Tensor, progress: float = 0.0,
                     history: Sequence[torch.Tensor] = ()) -> torch.Tensor:
    """One controller row per controlled loss parameter (metric learning): (K, F).

    Row ``k``: ``[state..., history states..., progress, values[k], onehot_K(k)...]``; the one-hot
    lets the shared policy treat, e.g., Phi1 and Phi2 of focal weighting differently.
    F = S (1 + H) + 2 + K for a state of size S and K parameters.
    """
    check_finite_tensor("state", state)
    check_finite_tensor("values", values)
    if state.dim() != 1 or values.dim() != 1 or values.numel() == 0:
        raise ControllerError(
            f"state {tuple(state.shape)} / values {tuple(values.shape)}; expected 1-D tensors, values non-empty"
        )
    parts = [state]
    for k, past in enumerate(history):
        check_finite_tensor(f"history[{k}]", past)
        if past.shape != state.shape:
            raise ControllerError(f"history[{k}] has shape {tuple(past.shape)}; expected {tuple(state.shape)}")
        parts.append(past.to(state))
    shared = torch.cat(parts + [state.new_tensor([_check_progress(progress)])])
    K = values.numel()
    return torch.cat([shared.expand(K, -1), values.detach().to(state).unsqueeze(-1),
                      torch.eye(K, dtype=state.dtype, device=state.device)], dim=-1)
