"""Builders from config sections, each rejecting unknown names with the valid choices."""

from __future__ import annotations

import math
import os
from typing import Dict

from torch import nn

from fairseq_dynloss import vision
from fairseq_dynloss.data.images import Splits

from . import objectives

TASKS = ("digits", "digits_metric", "mnist", "cifar10", "cifar100", "sop", "mnist1d",
         "mnist1d_large")
MODELS = ("mlp", "lenet", "resnet8", "resnet20", "resnet32", "wrn28_10", "densenet_bc100",
          "embedding_resnet", "mnist1d_mlp", "mnist1d_cnn", "mnist1d_gru")
LOSSES = ("ce", "label_smoothing", "poly1", "lsoftmax", "self_paced", "dynamic", "triplet",
          "margin", "triplet_mixture", "margin_mixture", "focal_weighting")
# The dynamic loss's prob form with Phi = the task's noise matrix T (forward correction).
LOSSES += ("forward_corrected",)
# Metric-learning losses whose parameters Phi ALA controls (losses/metric_ala.py).
METRIC_ALA_LOSSES = ("triplet_mixture", "margin_mixture", "focal_weighting")
METRIC_LEARNING_LOSSES = ("triplet", "margin") + METRIC_ALA_LOSSES


class ConfigError(ValueError):
    """An unknown name or an impossible combination in the trainer config."""


def _check(kind: str, name: str, choices) -> None:
    if name not in choices:
        raise ConfigError(f"unknown {kind} {name!r}; valid choices: {', '.join(choices)}")


def build_splits(task, data_dir: str) -> Splits:
    """The task's train/val/test datasets, with ``task.label_noise`` (if any) applied to the
    training labels only."""
    from fairseq_dynloss.data.label_noise import with_label_noise

    return with_label_noise(_clean_splits(task, data_dir), task)


def _clean_splits(task, data_dir: str) -> Splits:
    _check("task", task.name, TASKS)
    root = os.path.expanduser(data_dir)
    if task.name == "digits":
        from fairseq_dynloss.data.digits import load_digits_splits
        return load_digits_splits(task.val_size, task.test_size, task.split_seed)
    if task.name == "digits_metric":
        return _digits_metric_splits(task)
    if task.name == "mnist":
        from fairseq_dynloss.data.mnist import load_mnist_splits
        return load_mnist_splits(root, task.download, task.val_size, task.split_seed)
    if task.name in ("mnist1d", "mnist1d_large"):
        from fairseq_dynloss.data.mnist1d import load_mnist1d_splits
        return load_mnist1d_splits(root, task.num_samples, task.data_seed, task.val_size,
                                   task.split_seed)
    if task.name in ("cifar10", "cifar100"):
        from fairseq_dynloss.data.cifar import load_cifar_splits
        return load_cifar_splits(root, task.num_classes, task.download, task.val_size,
                                 task.split_seed, task.crop_padding, task.flip)
    from fairseq_dynloss.data.sop import load_sop_splits
    return load_sop_splits(root, task.download, task.val_classes, task.num_train_classes,
                           task.resize, task.crop)


def _digits_metric_splits(task) -> Splits:
    """Digits as a metric-learning task, SOP style: train and validate on the examples of the
    classes ``< num_train_classes`` (from the digits train / val split), test retrieval on every
    image of the other, unseen classes."""
    import torch

    from fairseq_dynloss.data.digits import load_digits_splits
    from fairseq_dynloss.data.images import ImageTensorDataset

    if not 2 <= task.num_train_classes <= 8:
        raise ConfigError(f"task.num_train_classes={task.num_train_classes}; expected 2..8 of the "
                          "10 digit classes (the rest, >= 2, are the test classes)")
    splits = load_digits_splits(task.val_size, task.test_size, task.split_seed)
    # the digits datasets hold normalised float images; a unit scale keeps them as they are
    subset = lambda images, labels, keep: ImageTensorDataset(images[keep], labels[keep])
    seen = lambda data: subset(data.images, data.labels, data.labels < task.num_train_classes)
    images = torch.cat([d.images for d in (splits.train, splits.val, splits.test)])
    labels = torch.cat([d.labels for d in (splits.train, splits.val, splits.test)])
    test = subset(images, labels, labels >= task.num_train_classes)
    return Splits(seen(splits.train), seen(splits.val), test, None, splits.input_shape)


def build_net(model, input_shape, num_outputs: int) -> nn.Module:
    """A network from ``vision`` (``num_outputs=0``: features, no head)."""
    _check("model", model.name, MODELS)
    channels = input_shape[0]
    if model.name == "mlp":
        return vision.MLP(input_shape, num_outputs, tuple(model.hidden))
    if model.name == "mnist1d_mlp":
        return vision.Mnist1dMLP(input_shape, num_outputs, model.hidden)
    if model.name == "mnist1d_cnn":
        return vision.Mnist1dCNN(input_shape, num_outputs, model.channels)
    if model.name == "mnist1d_gru":
        return vision.Mnist1dGRU(input_shape, num_outputs, model.hidden, model.bidirectional)
    if model.name == "lenet":
        return vision.LeNet(tuple(input_shape), num_outputs)
    if model.name.startswith("resnet"):
        return vision.CifarResNet(model.depth, num_outputs, channels)
    if model.name == "wrn28_10":
        return vision.WideResNet(model.depth, model.widen, num_outputs, model.dropout, channels)
    if model.name == "densenet_bc100":
        return vision.DenseNetBC(model.depth, model.growth, num_outputs, model.reduction, channels)
    return vision.EmbeddingResNet(model.depth, model.embedding_dim, model.width,
                                  model.pretrained_path, True, channels)


def build_objective(loss, num_classes, feature_dim: int, task=None) -> nn.Module:
    """The training objective; classification losses need ``num_classes``, ``forward_corrected``
    the task config (its ``label_noise`` gives the noise matrix T)."""
    _check("loss", loss.name, LOSSES)
    metric = loss.name in METRIC_LEARNING_LOSSES
    if metric != (num_classes is None):
        raise ConfigError(
            f"loss={loss.name} is a {'metric-learning' if metric else 'classification'} loss but "
            f"the task is {'classification' if num_classes else 'metric learning'}; use "
            f"{'ce, label_smoothing, poly1, lsoftmax, self_paced or dynamic' if num_classes else ', '.join(METRIC_LEARNING_LOSSES)}"
        )
    if loss.name == "ce":
        return objectives.CrossEntropyObjective()
    if loss.name == "label_smoothing":
        return objectives.LabelSmoothingObjective(loss.epsilon)
    if loss.name == "poly1":
        return objectives.Poly1Objective(loss.epsilon)
    if loss.name == "lsoftmax":
        return objectives.LSoftmaxObjective(feature_dim, num_classes, loss.margin, loss.beta_start,
                                            loss.beta_gamma, loss.beta_power, loss.beta_min)
    if loss.name == "self_paced":
        return objectives.SelfPacedObjective(num_classes, loss.start, loss.growth)
    if loss.name == "dynamic":
        return _build_dynamic_objective(loss, num_classes)
    if loss.name == "forward_corrected":
        if task is None:
            raise ConfigError("loss=forward_corrected needs the task config (its label_noise "
                              "section gives the noise matrix T); pass task= to build_objective")
        from fairseq_dynloss.data.label_noise import noise_matrix_of

        # The prob form with Phi = T, through the same class as loss=dynamic loss.form=prob.
        return objectives.DynamicObjective(num_classes, "full", 1, 1, 1.0, 0.0, 0.0, form="prob",
                                           phi_init=noise_matrix_of(task, num_classes))
    from pytorch_metric_learning import distances, losses, miners

    if loss.name in METRIC_ALA_LOSSES:
        return _build_metric_ala_objective(loss, distances, miners)
    distance = _build_distance(loss.distance, distances)
    if loss.name == "triplet":
        return objectives.MetricLearningObjective(
            losses.TripletMarginLoss(margin=loss.margin, distance=distance),
            None if loss.miner == "none" else miners.TripletMarginMiner(
                margin=loss.margin, type_of_triplets=loss.miner, distance=distance))
    return objectives.MetricLearningObjective(
        losses.MarginLoss(margin=loss.margin, beta=loss.beta, distance=distance),
        None if loss.miner == "none" else miners.DistanceWeightedMiner(
            cutoff=loss.cutoff, nonzero_loss_cutoff=loss.nonzero_loss_cutoff))


def _build_dynamic_objective(loss, num_classes: int) -> nn.Module:
    """``loss=dynamic``: scale null means 1/sqrt(C) for the paper form (the fairseq criterion's
    default too); the prob form has no scale and refuses one."""
    form = loss.get("form", "paper")
    _check("loss.form", form, ("paper", "prob"))
    if form == "prob":
        if loss.scale is not None:
            raise ConfigError(f"loss.scale={loss.scale} with loss.form=prob; the prob form has no "
                              "scale (leave loss.scale=null)")
        scale = 1.0
    else:
        scale = 1.0 / math.sqrt(num_classes) if loss.scale is None else loss.scale
    return objectives.DynamicObjective(num_classes, loss.parametrisation, loss.rank,
                                       loss.num_buckets, scale, loss.nll_weight,
                                       loss.label_smoothing, form=form,
                                       phi_init=loss.get("phi_init", None))


def _build_metric_ala_objective(loss, distances, miners) -> nn.Module:
    """Distance mixture (triplet / margin) or focal weighting; miners work on the plain Euclidean
    distance of normalised embeddings, the loss on ``F_Phi`` of the mined triplets."""
    bounds = (loss.phi_min, loss.phi_max)
    if loss.name == "focal_weighting":
        return objectives.FocalWeightingObjective(loss.alpha, loss.phi_init, bounds)
    _check("miner", loss.miner, ("none", "semihard", "hard", "all", "easy") if loss.name == "triplet_mixture"
           else ("none", "distance_weighted"))
    miner = None
    if loss.miner != "none" and loss.name == "triplet_mixture":
        miner = miners.TripletMarginMiner(margin=loss.margin, type_of_triplets=loss.miner,
                                          distance=distances.LpDistance())
    elif loss.miner != "none":
        miner = miners.DistanceWeightedMiner(cutoff=loss.cutoff, nonzero_loss_cutoff=loss.nonzero_loss_cutoff)
    if loss.name == "triplet_mixture":
        return objectives.TripletMixtureObjective(loss.margin, loss.transforms, loss.phi_init, bounds, miner)
    return objectives.MarginMixtureObjective(loss.margin, loss.beta, loss.transforms, loss.phi_init,
                                             bounds, miner)


def _build_distance(name: str, distances):
    choices: Dict[str, object] = {"euclidean": distances.LpDistance, "cosine": distances.CosineSimilarity}
    _check("distance", name, tuple(choices))
    return choices[name]()
