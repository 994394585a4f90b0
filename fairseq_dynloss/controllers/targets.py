"""What an ALA controller acts on: the controlled elements of a loss, their state and features.

Both targets offer the same interface to a controller loop:

* ``feature_size`` (F) and ``num_elements`` (P);
* ``state(outputs, labels)``: the validation state of the student (on CPU) from the network's
  validation outputs;
* ``features(state, history, progress)``: the (P, F) policy inputs, one row per element;
* ``apply(actions, beta)``: ``Phi[e] += beta a_e`` in place, then clamping;
* ``summary()``: a few numbers for the logs.

``PairTarget`` (classification and translation, docs/design.md §3.4): the class pairs of a full Phi
(``Phi[i, j]``, ``i != j``; optionally the diagonal too) or every entry of a bucketed Phi's
G x G matrix; state: the confusion matrix of ``state.py``; features: ``pair_features``.

**Bucketed Phi: the per-bucket mean.** ``Phi_ij = d_i [i = j] + B[g(i), g(j)]`` weighs the *sum*
of the ``|h|`` log-probabilities of bucket h by ``B[g, h]``, so a step of B changes
``u = Phi[y] . log p`` by |h| times more than a diagonal step (toy corpus, 424 types, G = 4:
B = 0.075 saturated the sigmoid for 87 % of the tokens). The controlled value is therefore
``W[g, h] = |h| B[g, h]``, the weight of bucket h's *mean* log-probability, so that beta and
the clamp mean the same whatever |V| and G. Both the generic trainer and ``translation_ala``
use this one target.

**The prob form** (``l = -log sum_j p_j Phi[j, y]``, ``losses/prob_form.py``) needs Phi >= 0.
For a full Phi the controller moves logits ``L`` (C, C) and Phi is ``phi_from_logits(L, 1) = softmax``
of each row: non-negative by construction. ``L_ii = 0`` and ``L_ij = logit_init`` (default -9.2:
``Phi_ij ~ 1e-4``, i.e. cross-entropy up to 0.1 %) at the start; a step of beta on ``L_ij``
multiplies ``Phi_ij / Phi_ii`` by ``exp(beta)``, the same relative change whatever its size. The
clamp bounds ``L_ij`` into ``[logit_init, logit_max]`` unless one is given. At ``L = 0``
everywhere Phi is uniform and the loss ``-log (p^T Phi)_y = log C`` no longer depends on the
student (MNIST-1D: a policy that drove every entry there left the student at 81-90 % final
error; the best-validation checkpoint was unharmed). ``logit_max = -2`` excludes that corner (its
all-"+" corner is ``Phi_ii = 0.45, Phi_ij = 0.061``, a fixed robust loss measured better than
cross-entropy) but was worse on validation in the pilot than the default 0 (README).

**The prob form with a bucketed Phi.** There ``M[j, y] = d_j [j = y] + B[g(j), g(y)] / |g(j)|``:
``B[g, h]`` already weighs the *mean* probability of bucket g for a label of bucket h, so B
itself is the controlled weight (no ``|h|`` factor). The controller moves G x G logits ``L`` and
``B = exp(L)``: non-negative by construction, each entry on its own, and a step of beta
multiplies ``B[g, h] / d`` by ``exp(beta)``, the same relative change as the full target's
``Phi_ij / Phi_ii``. ``L = logit_init`` everywhere at the start (``d`` stays as the Phi had it;
the target overwrites B, as the full target overwrites Phi), so per token

    l = -log(d_y p_y) - log(1 + e^logit_init X / (d_y p_y)),   X = sum_g mean_{j in g} p_j <= 1:

with ``d = 1`` (identity) cross-entropy minus at most ``e^logit_init X / p_y`` (``G e^logit_init``
for a uniform student, 4e-4 at G = 4; larger only for tokens with ``p_y`` far below ``X``).
The clamp bounds L into ``[logit_init, logit_max]`` unless one is given, so ``B <= 1``: at the
corner ``B = 1`` every bucket's mean probability counts fully for every label, and the loss
still depends on ``p_y``. Not the teacher's map ``b_g softmax(B_logits_g)``
(``teacher/prob_tensors.py``): its row sums are a separate mixing vector, so G x G logits alone
could not take B from ~0 (cross-entropy) to a bucket weight.

**Clamp around the start.** The clamp bounds the controlled values' change from their initial
values (Phi = I: the off-diagonal into ``[low, high]``, a controlled diagonal into
``[1 + low, 1 + high]``).

``ElementTarget`` (metric learning): the K entries of a loss-parameter vector (distance-mixture
weights, focal scales); state: ``distance_statistics`` of the validation pairs' positive and
negative distances; features: ``element_features``.
"""

from __future__ import annotations

import math
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from .errors import ControllerError, check_positive_int
from .policy import apply_actions, controlled_tensor, element_index, move_elements
from .state import (
    DEFAULT_QUANTILES, ConfusionAccumulator, controlled_pairs, distance_statistics, element_features,
    pair_distances, pair_feature_size, pair_features,
)


class PairTarget:
    """Class pairs of a ``FullPhi`` / ``BucketedPhi`` (module docstring).

    Args:
        phi: the objective's Phi, moved in place.
        history: H earlier states in each row's features.
        clamp: optional ``(low, high)`` for the change of the controlled values from their start.
        diagonal: also control a full Phi's diagonal ``Phi[i, i]`` (prob form: ``L_ii``).
        form: the loss form, ``paper`` or ``prob`` (module docstring; prob: a full Phi through
            row-softmax logits, a bucketed Phi through ``B = exp(L)``).
        logit_init: prob form: the off-diagonal logits (bucketed: every logit) at the start
            (< logit_max).
        logit_max: prob form: the largest of those logits (<= 0) when no clamp is given.
    """

    def __init__(self, phi, history: int, clamp: Optional[Tuple[float, float]] = None,
                 diagonal: bool = False, form: str = "paper", logit_init: float = -9.2,
                 logit_max: float = 0.0):
        controlled_tensor(phi)  # a diag_lowrank Phi: ControllerError naming what is supported
        self.phi = phi
        self.bucketed = phi.parametrisation == "bucketed"
        if diagonal and self.bucketed:
            raise ControllerError("diagonal control applies to a full Phi; a bucketed Phi's B[g, g] "
                                  "(within-bucket entries) is always controlled")
        if form not in ("paper", "prob"):
            raise ControllerError(f"loss form {form!r}; expected 'paper' or 'prob'")
        self.num_classes = phi.num_classes
        self.form = form
        self.controlled = None
        if form == "prob":
            check_logit_box(logit_init, logit_max)
            n = phi.num_buckets if self.bucketed else self.num_classes
            self.controlled = torch.full((n, n), float(logit_init), dtype=torch.float64)
            if not self.bucketed:  # full: L_ii = 0; bucketed: B[g, g] is an off-diagonal weight too
                self.controlled.fill_diagonal_(0.0)
            if clamp is None:
                clamp = (0.0, float(logit_max) - float(logit_init))  # L_ij in [logit_init, logit_max]
        self.buckets = phi.bucket_of.cpu() if self.bucketed else None
        # |h| from the long bucket map: exact even when the Phi's buffers are half precision
        self.sizes = (torch.bincount(self.buckets, minlength=phi.num_buckets).double()
                      if self.bucketed else None)
        # full: Phi[i, j], i != j (and i == j with diagonal); bucketed: every W[g, h]
        n = phi.num_buckets if self.bucketed else self.num_classes
        self.elements = controlled_pairs(n, include_diagonal=self.bucketed or diagonal)
        self.feature_size = pair_feature_size(history)
        self.clamp = None if clamp is None else (float(clamp[0]), float(clamp[1]))
        if self.clamp is not None and not self.clamp[0] <= self.clamp[1]:
            raise ControllerError(f"clamp={list(clamp)}; expected [low, high] with low <= high")
        self.origin = self.values().clone()  # the clamp bounds the change from here
        # validated once: every window reuses the index and the per-element bounds
        self.index = element_index(self.origin, self.elements)
        start = self.origin[self.index]
        self.bounds = None if self.clamp is None else (start + self.clamp[0], start + self.clamp[1])
        if self.controlled is not None:
            self._write(self.origin)
        self.description = phi.parametrisation + ("+diagonal" if diagonal else "") + (":prob" if form == "prob" else "")
        # summary(): flat indices of the controlled off-diagonal and diagonal entries (full Phi)
        i, j = self.elements[:, 0], self.elements[:, 1]
        flat = i * n + j
        self.summary_index = (flat[i != j], flat[i == j])

    @property
    def num_elements(self) -> int:
        return int(self.elements.shape[0])

    def values(self) -> torch.Tensor:
        """The controlled (n, n) values, float64 on CPU (a copy)."""
        if self.controlled is not None:
            return self.controlled.detach().cpu().double().clone()
        tensor = controlled_tensor(self.phi).detach().cpu().double()
        return tensor * self.sizes if self.bucketed else tensor.clone()

    def _write(self, values: torch.Tensor) -> None:
        tensor = controlled_tensor(self.phi)
        if self.controlled is not None:  # prob form: Phi (or B) from the logits
            self.controlled.copy_(values)
            # Full: = losses.phi_from_logits(values, 1) bit for bit (0 * I + 1 * softmax), without
            # its argument checks and the identity term: the logits are this target's own, finite.
            # Bucketed: B = exp(L) (module docstring).
            values = torch.exp(values) if self.bucketed else torch.softmax(values, dim=-1)
        elif self.bucketed:
            values = values / self.sizes
        with torch.no_grad():
            tensor.copy_(values.to(tensor.device, tensor.dtype))

    def state_dict(self) -> Dict:
        """The prob form's logits (Phi itself is the objective's buffer)."""
        return {"logits": None if self.controlled is None else self.controlled.clone()}

    def load_state_dict(self, state: Dict) -> None:
        logits = state.get("logits")
        if (logits is None) != (self.controlled is None):
            raise ControllerError("checkpoint ALA target and this run differ in the loss form (prob: logits)")
        if logits is not None:
            if tuple(logits.shape) != tuple(self.controlled.shape):
                raise ControllerError(f"checkpoint logits have shape {tuple(logits.shape)}; expected "
                                      f"{tuple(self.controlled.shape)}")
            self.controlled.copy_(logits.double())

    def state(self, outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Confusion state (n, n) from validation logits (N, C) and labels (N,)."""
        accumulator = ConfusionAccumulator(self.num_classes, self.buckets)
        accumulator.update(F.log_softmax(outputs.float(), dim=1), labels)
        return accumulator.compute().cpu()

    def _scale(self) -> float:
        return max(abs(self.clamp[0]), abs(self.clamp[1]), 1e-12) if self.clamp is not None else 1.0

    def features(self, state: torch.Tensor, history: Sequence[torch.Tensor], progress: float) -> torch.Tensor:
        change = self.values() - self.origin
        return pair_features(state, change, list(history), progress, self.elements, value_scale=self._scale())

    def apply(self, actions: torch.Tensor, beta: float) -> torch.Tensor:
        """``value[e] += beta a_e``, clamped around the start; returns the (P,) new values."""
        values = self.values()
        new = move_elements(values, self.index, actions, beta, self.bounds)
        self._write(values)
        return new

    def summary(self) -> Dict[str, float]:
        """Bucketed: mean |W|, min and max of the per-bucket mean weights (paper: W = |h| B; prob:
        B itself); full: mean |Phi_ij| over the controlled i != j (and the
        mean diagonal when it is controlled)."""
        values = controlled_tensor(self.phi).detach().cpu().double() if self.form == "prob" else self.values()
        if self.bucketed:
            return {"W_mean_abs": values.abs().mean().item(), "W_min": values.min().item(),
                    "W_max": values.max().item()}
        flat = values.flatten()
        out = {"phi_offdiag_mean_abs": flat.index_select(0, self.summary_index[0]).abs().mean().item()}
        if self.summary_index[1].numel():
            out["phi_diag_mean"] = flat.index_select(0, self.summary_index[1]).mean().item()
        return out


def check_logit_box(logit_init: float, logit_max: float) -> None:
    """Raise ControllerError unless ``logit_init < logit_max <= 0`` (both finite): the prob form's
    start and default upper bound of the controlled logits."""
    numbers = all(isinstance(v, (int, float)) and math.isfinite(v) for v in (logit_init, logit_max))
    if not (numbers and logit_init < logit_max <= 0):
        raise ControllerError(f"logit_init={logit_init!r}, logit_max={logit_max!r}; expected finite "
                              "numbers with logit_init < logit_max <= 0")


def element_feature_size(history: int, num_elements: int,
                         quantiles: Sequence[float] = DEFAULT_QUANTILES) -> int:
    """F of ``element_features`` on ``distance_statistics``: S (1 + H) + 2 + K, S = 2 (2 + Q)."""
    history = check_positive_int("history_length", history, minimum=0)
    return 2 * (2 + len(quantiles)) * (1 + history) + 2 + check_positive_int("num_elements", num_elements)


class ElementTarget:
    """The entries of a (K,) loss-parameter tensor (module docstring).

    Args:
        values: the (K,) tensor (e.g. an objective's ``phi_values`` buffer), moved in place.
        names: K names for the logs (``phi_<name>`` columns).
        bounds: ``(low, high)`` every entry is clamped into after a step.
        history: H earlier states in the features.
    """

    def __init__(self, values: torch.Tensor, names: Sequence[str], bounds: Tuple[float, float],
                 history: int, quantiles: Sequence[float] = DEFAULT_QUANTILES):
        if not isinstance(values, torch.Tensor) or values.dim() != 1 or values.numel() != len(names):
            shape = tuple(values.shape) if isinstance(values, torch.Tensor) else type(values).__name__
            raise ControllerError(f"loss parameters have shape {shape}; expected ({len(names)},), one per name")
        self.values, self.names = values, tuple(names)
        self.clamp = (float(bounds[0]), float(bounds[1]))
        self.quantiles = tuple(quantiles)
        self.elements = torch.arange(values.numel())
        self.feature_size = element_feature_size(history, values.numel(), self.quantiles)
        self.description = "metric:" + ",".join(self.names)

    @property
    def num_elements(self) -> int:
        return int(self.elements.shape[0])

    def state(self, outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Distance statistics (S,) from validation embeddings (N, D) and labels (N,)."""
        return distance_statistics(*pair_distances(outputs, labels), quantiles=self.quantiles).cpu()

    def features(self, state: torch.Tensor, history: Sequence[torch.Tensor], progress: float) -> torch.Tensor:
        return element_features(state, self.values.detach().cpu(), progress, list(history))

    def apply(self, actions: torch.Tensor, beta: float) -> torch.Tensor:
        return apply_actions(self.values, self.elements, actions, beta, self.clamp)

    def summary(self) -> Dict[str, float]:
        return {f"phi_{name}": v for name, v in zip(self.names, self.values.detach().cpu().tolist())}
