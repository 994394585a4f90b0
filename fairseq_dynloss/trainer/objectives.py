"""Training objectives of the generic trainer: thin modules around the pure functions in
``fairseq_dynloss.losses`` (classification) and pytorch-metric-learning (metric learning).

Every objective maps the network's outputs and targets to a scalar batch-mean loss
(``forward``), says what the network outputs at test time (``predict``), and gives the loss
reported on validation data (``eval_loss``). State that must survive a resume is a buffer.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from fairseq_dynloss.losses import build_phi, dynamic_loss, load_phi_file, lsoftmax_logits
from fairseq_dynloss.losses import metric_ala
from fairseq_dynloss.losses.self_paced import self_paced_loss, self_paced_threshold


class ClassificationObjective(nn.Module):
    """Base: the network outputs logits; the validation loss is cross-entropy (comparable across
    losses, as the validation-loss curves of ALA's Figure 5)."""

    kind = "classification"
    needs_head = True

    def start_epoch(self, epoch: int) -> None:
        """Hook called before each training epoch (schedules)."""

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs

    def eval_loss(self, outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.predict(outputs), target)


class CrossEntropyObjective(ClassificationObjective):
    def forward(self, outputs, target):
        return F.cross_entropy(outputs, target)


class LabelSmoothingObjective(ClassificationObjective):
    """Cross-entropy against ``(1 - eps) one_hot + eps / C`` (Szegedy et al. 2016)."""

    def __init__(self, epsilon: float):
        super().__init__()
        if not 0 <= epsilon < 1:
            raise ValueError(f"loss.epsilon={epsilon}; expected a value in [0, 1)")
        self.epsilon = epsilon

    def forward(self, outputs, target):
        return F.cross_entropy(outputs, target, label_smoothing=self.epsilon)


class Poly1Objective(ClassificationObjective):
    """Poly-1 (Leng et al. 2022): ``CE + eps (1 - p_y)``, batch mean; eps = 0 is cross-entropy."""

    def __init__(self, epsilon: float):
        super().__init__()
        if not math.isfinite(epsilon) or epsilon < -1:
            raise ValueError(f"loss.epsilon={epsilon}; expected a finite value >= -1 (below -1 "
                             "the loss is no longer smallest at p_y = 1)")
        self.epsilon = epsilon

    def forward(self, outputs, target):
        lprobs = F.log_softmax(outputs, dim=1)
        nll = F.nll_loss(lprobs, target)
        p_y = lprobs.gather(1, target.unsqueeze(1)).exp()
        return nll + self.epsilon * (1.0 - p_y).mean()


class LSoftmaxObjective(ClassificationObjective):
    """L-Softmax: owns the (C, D) class weights; the network outputs features.

    ``beta`` is annealed per training step as in the authors' code:
    ``beta_t = max(beta_min, beta_start * (1 + gamma t) ** -power)``.
    """

    needs_head = False

    def __init__(self, feature_dim: int, num_classes: int, margin: int, beta_start: float,
                 beta_gamma: float, beta_power: float, beta_min: float):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_classes, feature_dim))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        self.margin = int(margin)
        self.beta_start, self.beta_gamma = beta_start, beta_gamma
        self.beta_power, self.beta_min = beta_power, beta_min
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    def beta(self) -> float:
        t = self.step.item()
        return max(self.beta_min, self.beta_start * (1 + self.beta_gamma * t) ** -self.beta_power)

    def forward(self, outputs, target):
        logits = lsoftmax_logits(outputs, self.weight, target, self.margin, self.beta())
        self.step += 1
        return F.cross_entropy(logits, target)

    def predict(self, outputs):
        return outputs @ self.weight.t()


class SelfPacedObjective(ClassificationObjective):
    """Cross-entropy of the examples easier than ``lambda_e = start * growth ** epoch``."""

    def __init__(self, num_classes: int, start: Optional[float], growth: float):
        super().__init__()
        # Default: ln C, the loss of a uniform prediction, so about half the data counts at first.
        self.start = math.log(num_classes) if start is None else float(start)
        self.growth = growth
        self.threshold = self_paced_threshold(0, self.start, growth)

    def start_epoch(self, epoch):
        self.threshold = self_paced_threshold(epoch, self.start, self.growth)

    def forward(self, outputs, target):
        return self_paced_loss(F.cross_entropy(outputs, target, reduction="none"), self.threshold)


class DynamicObjective(ClassificationObjective):
    """The dynamic loss with a fixed (teacher-free) Phi, in the paper's form
    ``-sigmoid(s Phi[y] . log p)`` or the probability form ``-log (p^T Phi)_y``
    (``losses.dynamic_loss``).

    ``loss=forward_corrected`` is this class with ``form="prob"`` and Phi = the task's noise
    matrix T (``registry.build_objective``): the same computation, bit for bit, as
    ``loss=dynamic loss.form=prob loss.phi_init=T.csv``.

    Args:
        phi_init: None (identity), a Phi file (``.pt`` or ``.csv``, ``losses.load_phi_file``) or
            a (C, C) tensor for a ``full`` Phi; validated for ``form`` before use.
    """

    def __init__(self, num_classes: int, parametrisation: str, rank: int, num_buckets: int,
                 scale: float, nll_weight: float, label_smoothing: float, form: str = "paper",
                 phi_init=None):
        super().__init__()
        self.phi = build_phi(parametrisation, num_classes, rank=rank, num_buckets=num_buckets)
        if isinstance(phi_init, torch.Tensor):
            self.phi.load_tensors({"matrix": phi_init}, form=form)
        elif phi_init is not None:
            load_phi_file(self.phi, phi_init, form=form)
        self.scale, self.nll_weight, self.label_smoothing = scale, nll_weight, label_smoothing
        self.form = form

    def forward(self, outputs, target):
        out = dynamic_loss(F.log_softmax(outputs, dim=1), target, self.phi, scale=self.scale,
                           nll_weight=self.nll_weight, label_smoothing=self.label_smoothing,
                           form=self.form)
        return out.loss / target.numel()


class MetricLearningObjective(nn.Module):
    """pytorch-metric-learning loss + miner on L2-normalised embeddings."""

    kind = "metric"
    needs_head = False

    def __init__(self, loss: nn.Module, miner: Optional[nn.Module]):
        super().__init__()
        self.loss, self.miner = loss, miner

    def start_epoch(self, epoch):
        pass

    def forward(self, outputs, target):
        pairs = self.miner(outputs, target) if self.miner is not None else None
        return self.loss(outputs, target, pairs)

    def predict(self, outputs):
        return outputs

    def eval_loss(self, outputs, target):
        return self.loss(outputs, target)


class MetricALAObjective(nn.Module):
    """Base of the metric-learning losses whose parameters ALA moves (``losses/metric_ala.py``).

    Embeddings are L2-normalised and compared by Euclidean distance (as pytorch-metric-learning's
    ``LpDistance``). ``phi_values`` (K,) is a buffer -- the controller's handle, saved in
    checkpoints -- with names ``phi_names`` and bounds ``phi_bounds`` that ALA clamps to. The
    validation loss uses the initial Phi on every valid triplet / pair, so it stays comparable
    while Phi moves.
    """

    kind = "metric"
    needs_head = False

    def __init__(self, phi_init, names, bounds, miner: Optional[nn.Module]):
        super().__init__()
        phi = torch.tensor([float(v) for v in phi_init], dtype=torch.float32)
        low, high = (float(b) for b in bounds)
        if not low <= high:
            raise metric_ala.MetricLossError(f"phi bounds [{low}, {high}]; expected low <= high")
        if phi.numel() != len(names):
            raise metric_ala.MetricLossError(
                f"phi_init has {phi.numel()} values {phi.tolist()}; expected {len(names)} ({', '.join(names)})"
            )
        metric_ala.check_phi_values(phi, low, high, "phi_init")
        self.register_buffer("phi_values", phi)
        self.register_buffer("phi_reference", phi.clone(), persistent=False)
        self.phi_names, self.phi_bounds, self.miner = tuple(names), (low, high), miner

    def start_epoch(self, epoch):
        pass

    def predict(self, outputs):
        return F.normalize(outputs, dim=1)

    def forward(self, outputs, target):
        embeddings = self.predict(outputs)
        dist = torch.cdist(embeddings, embeddings)
        if self.miner is None:
            return self.loss_all(dist, target, self.phi_values)
        anchor, positive, negative = self.miner(outputs, target)
        return self.loss_triplets(dist[anchor, positive], dist[anchor, negative], self.phi_values)

    def eval_loss(self, outputs, target):
        embeddings = self.predict(outputs)
        return self.loss_all(torch.cdist(embeddings, embeddings), target, self.phi_reference)


class TripletMixtureObjective(MetricALAObjective):
    """Triplet loss on a Phi-weighted mixture of distance transforms (docs/design.md §3.4, distance mixture)."""

    def __init__(self, margin: float, transforms, phi_init, bounds, miner):
        super().__init__(phi_init, metric_ala.check_transforms(transforms), bounds, miner)
        self.margin = float(margin)

    def loss_triplets(self, d_ap, d_an, phi):
        return metric_ala.triplet_mixture_loss(d_ap, d_an, phi, self.margin, self.phi_names)

    def loss_all(self, dist, target, phi):
        return metric_ala.triplet_mixture_loss_all(dist, target, phi, self.margin, self.phi_names)


class MarginMixtureObjective(MetricALAObjective):
    """Margin loss (Wu et al. 2017) on a Phi-weighted mixture of distance transforms."""

    def __init__(self, margin: float, boundary: float, transforms, phi_init, bounds, miner):
        super().__init__(phi_init, metric_ala.check_transforms(transforms), bounds, miner)
        self.margin, self.boundary = float(margin), float(boundary)

    def loss_triplets(self, d_ap, d_an, phi):
        return metric_ala.margin_mixture_loss(d_ap, d_an, phi, self.margin, self.boundary, self.phi_names)

    def loss_all(self, dist, target, phi):
        return metric_ala.margin_mixture_loss_all(dist, target, phi, self.margin, self.boundary,
                                                  self.phi_names)


class FocalWeightingObjective(MetricALAObjective):
    """Focal weighting with scales (Phi1, Phi2) and threshold alpha (docs/design.md §3.4); every pair of
    the batch counts, so there is no miner."""

    def __init__(self, alpha: float, phi_init, bounds):
        low = float(bounds[0])
        if not low > 0:
            raise metric_ala.MetricLossError(
                f"focal scale bounds [{bounds[0]}, {bounds[1]}]; expected a lower bound > 0 (1/Phi)"
            )
        super().__init__(phi_init, ("phi1", "phi2"), bounds, None)
        self.alpha = float(alpha)

    def loss_all(self, dist, target, phi):
        return metric_ala.focal_weighting_loss(dist, target, phi, self.alpha)
