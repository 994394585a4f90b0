"""What an ALA controller acts on: the controlled elements of a loss, their state and features.

Both targets offer the same interface to a controller loop:

* ``feature_size`` (F) and ``num_elements`` (P);
* ``state(outputs, labels)``: the validation state of the student (on CPU) from the network's
  validation outputs;
* ``features(state, history, progress)``: the (P, F) policy inputs, one row per element;
* ``apply(actions, beta)``: ``Phi[e] += beta a_e`` in place, then clamping;
* ``summary()``: a few numbers for the logs.

``PairTarget`` (classification, DESIGN 3.4): the class pairs of a full Phi (``Phi[i, j]``,
``i != j``) or every entry ``B[g, h]`` of a bucketed Phi; state: the confusion matrix of
``state.py``; features: ``pair_features``.

``ElementTarget`` (metric learning): the K entries of a loss-parameter vector (distance-mixture
weights, focal scales); state: ``distance_statistics`` of the validation pairs' positive and
negative distances; features: ``element_features``.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from .errors import ControllerError, check_positive_int
from .policy import apply_actions, controlled_tensor
from .state import (
    DEFAULT_QUANTILES, ConfusionAccumulator, controlled_pairs, distance_statistics, element_features,
    pair_distances, pair_feature_size, pair_features,
)


class PairTarget:
    """Class pairs of a ``FullPhi`` / ``BucketedPhi`` (module docstring).

    Args:
        phi: the objective's Phi, moved in place.
        history: H earlier states in each row's features.
        clamp: optional ``(low, high)`` for the controlled entries after every step.
    """

    def __init__(self, phi, history: int, clamp: Optional[Tuple[float, float]] = None):
        controlled_tensor(phi)  # a diag_lowrank Phi: ControllerError naming what is supported
        self.phi = phi
        bucketed = phi.parametrisation == "bucketed"
        self.num_classes = phi.num_classes
        self.buckets = phi.bucket_of.cpu() if bucketed else None
        # full: Phi[i, j], i != j; bucketed: every B[g, h] (B[g, g] sets within-bucket entries)
        self.elements = controlled_pairs(phi.num_buckets if bucketed else self.num_classes,
                                         include_diagonal=bucketed)
        self.feature_size = pair_feature_size(history)
        self.clamp = clamp
        self.description = phi.parametrisation

    @property
    def num_elements(self) -> int:
        return int(self.elements.shape[0])

    def state(self, outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Confusion state (n, n) from validation logits (N, C) and labels (N,)."""
        accumulator = ConfusionAccumulator(self.num_classes, self.buckets)
        accumulator.update(F.log_softmax(outputs.float(), dim=1), labels)
        return accumulator.compute().cpu()

    def features(self, state: torch.Tensor, history: Sequence[torch.Tensor], progress: float) -> torch.Tensor:
        values = controlled_tensor(self.phi).detach().cpu()
        return pair_features(state, values, list(history), progress, self.elements)

    def apply(self, actions: torch.Tensor, beta: float) -> torch.Tensor:
        return apply_actions(self.phi, self.elements, actions, beta, self.clamp)

    def summary(self) -> Dict[str, float]:
        """Mean |Phi| over the controlled entries (Phi's off-diagonal, or B)."""
        tensor = controlled_tensor(self.phi).detach().cpu()
        return {"phi_offdiag_mean_abs": tensor[self.elements[:, 0], self.elements[:, 1]].abs().mean().item()}


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
