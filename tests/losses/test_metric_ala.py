"""ALA's metric-learning losses (docs/design.md §3.4): hand values on tiny inputs, the library losses at
Phi = e_linear, the all-triplets forms against explicit triplet lists, and bad inputs."""

import math

import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning import distances, losses, miners
from pytorch_metric_learning.utils import loss_and_miner_utils as lmu

from fairseq_dynloss.losses.metric_ala import (
    MetricLossError, check_phi_values, focal_weighting_loss, margin_mixture_loss,
    margin_mixture_loss_all, mixture_distance, triplet_mixture_loss, triplet_mixture_loss_all,
)

LINEAR = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64)


def embeddings(n, dim=3, seed=0, classes=3):
    g = torch.Generator().manual_seed(seed)
    e = F.normalize(torch.randn(n, dim, generator=g, dtype=torch.float64), dim=1).requires_grad_()
    return e, torch.randint(0, classes, (n,), generator=g)


def unit_distances(e):
    """Distances as the library's LpDistance: of the L2-normalised embeddings (and its gradient)."""
    u = F.normalize(e, dim=1)
    return torch.cdist(u, u)


def test_mixture_distance_by_hand():
    d = torch.tensor([0.5, 2.0])
    phi = torch.tensor([1.0, 2.0, 0.5, 0.25])
    expected = [x + 2 * x * x + 0.5 * math.log1p(x) + 0.25 * math.expm1(x) for x in (0.5, 2.0)]
    torch.testing.assert_close(mixture_distance(d, phi), torch.tensor(expected))
    torch.testing.assert_close(mixture_distance(d, torch.tensor([3.0]), ["square"]), torch.tensor([0.75, 12.0]))


def test_triplet_mixture_by_hand():
    # F(d) = d + d^2: triplet 1: 0.39 - 0.75 + 0.1 < 0 (inactive); triplet 2: 2 - 0.24 + 0.1 = 1.86
    loss = triplet_mixture_loss(torch.tensor([0.3, 1.0]), torch.tensor([0.5, 0.2]), torch.tensor([1.0, 1.0]),
                                0.1, ["linear", "square"])
    assert loss.item() == pytest.approx(1.86)
    none_active = triplet_mixture_loss(torch.tensor([0.1]), torch.tensor([2.0]), torch.tensor([1.0, 1.0]),
                                       0.1, ["linear", "square"])
    assert none_active.item() == 0.0


def test_margin_mixture_by_hand():
    # F(d) = 2 d, b = 1.2, alpha = 0.2: triplet 1: pos max(0, 1.0 - 1.0) = 0, neg max(0, 1.4 - 0.6) = 0.8;
    # triplet 2: pos max(0, 1.6 - 1.0) = 0.6, neg max(0, 1.4 - 2.4) = 0 -> (0.8 + 0.6) / 2 non-zero terms
    loss = margin_mixture_loss(torch.tensor([0.5, 0.8]), torch.tensor([0.3, 1.2]), torch.tensor([2.0]),
                               0.2, 1.2, ["linear"])
    assert loss.item() == pytest.approx(0.7)


def test_focal_weighting_by_hand():
    dist = torch.tensor([[0.0, 0.5, 1.5], [0.5, 0.0, 1.0], [1.5, 1.0, 0.0]], dtype=torch.float64)
    labels = torch.tensor([0, 0, 1])
    phi1, phi2 = 2.0, 4.0
    pos = 0.5 * math.log(1 + math.exp(-1.0))  # anchors 0 and 1: one positive at d = 0.5
    anchor0 = pos + 0.25 * math.log(1 + math.exp(-2.0))  # negative at 1.5
    anchor1 = pos + 0.25 * math.log(2.0)  # negative at 1.0 = alpha
    anchor2 = 0.25 * math.log(1 + math.exp(-2.0) + 1.0)  # no positive: that term is log 1 = 0
    loss = focal_weighting_loss(dist, labels, torch.tensor([phi1, phi2], dtype=torch.float64), 1.0)
    assert loss.item() == pytest.approx((anchor0 + anchor1 + anchor2) / 3, rel=1e-12)


def test_focal_weighting_against_naive_loops_and_large_scales():
    e, labels = embeddings(9, seed=1)
    dist = torch.cdist(e, e)
    phi = torch.tensor([3.0, 7.0], dtype=torch.float64)
    total = 0.0
    for i in range(9):
        pos = sum(math.exp(3.0 * (dist[i, j].item() - 0.8)) for j in range(9) if j != i and labels[j] == labels[i])
        neg = sum(math.exp(-7.0 * (dist[i, j].item() - 0.8)) for j in range(9) if labels[j] != labels[i])
        total += math.log1p(pos) / 3.0 + math.log1p(neg) / 7.0
    assert focal_weighting_loss(dist, labels, phi, 0.8).item() == pytest.approx(total / 9, rel=1e-12)
    big = focal_weighting_loss(dist, labels, torch.tensor([500.0, 500.0], dtype=torch.float64), 0.8)
    assert torch.isfinite(big)  # logsumexp: no overflow where exp(500 d) would


@pytest.mark.parametrize("miner", ["none", "semihard"])
def test_triplet_mixture_at_linear_phi_equals_the_library_triplet_loss(miner):
    e, labels = embeddings(16, seed=2)
    library = losses.TripletMarginLoss(margin=0.3, distance=distances.LpDistance())
    if miner == "none":
        expected = library(e, labels)
        got = triplet_mixture_loss_all(unit_distances(e), labels, LINEAR, 0.3)
    else:
        a, p, n = miners.TripletMarginMiner(margin=0.3, type_of_triplets="semihard")(e, labels)
        assert a.numel() > 0
        expected = library(e, labels, (a, p, n))
        dist = unit_distances(e)
        got = triplet_mixture_loss(dist[a, p], dist[a, n], LINEAR, 0.3)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(torch.autograd.grad(got, e)[0], torch.autograd.grad(expected, e)[0])


@pytest.mark.parametrize("miner", ["none", "distance_weighted"])
def test_margin_mixture_at_linear_phi_equals_the_library_margin_loss(miner):
    e, labels = embeddings(16, dim=8, seed=3)
    library = losses.MarginLoss(margin=0.2, beta=1.2, distance=distances.LpDistance())
    if miner == "none":
        expected = library(e, labels)
        got = margin_mixture_loss_all(unit_distances(e), labels, LINEAR, 0.2, 1.2)
    else:
        torch.manual_seed(0)
        a, p, n = miners.DistanceWeightedMiner(cutoff=0.5, nonzero_loss_cutoff=1.4)(e, labels)
        expected = library(e, labels, (a, p, n))
        dist = unit_distances(e)
        got = margin_mixture_loss(dist[a, p], dist[a, n], LINEAR, 0.2, 1.2)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(torch.autograd.grad(got, e)[0], torch.autograd.grad(expected, e)[0])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_all_triplet_forms_equal_the_listed_triplets(seed):
    e, labels = embeddings(14, seed=seed, classes=3)
    dist = torch.cdist(e, e)
    phi = torch.tensor([0.7, 0.4, 0.3, 0.2], dtype=torch.float64)
    a, p, n = lmu.get_all_triplets_indices(labels)
    for listed, dense in (
        (triplet_mixture_loss(dist[a, p], dist[a, n], phi, 0.5), triplet_mixture_loss_all(dist, labels, phi, 0.5)),
        (margin_mixture_loss(dist[a, p], dist[a, n], phi, 0.2, 1.0), margin_mixture_loss_all(dist, labels, phi, 0.2, 1.0)),
    ):
        torch.testing.assert_close(dense, listed)
        torch.testing.assert_close(torch.autograd.grad(dense, e, retain_graph=True)[0],
                                   torch.autograd.grad(listed, e, retain_graph=True)[0])


def test_no_valid_triplet_gives_zero():
    e, _ = embeddings(4, seed=4)
    same = torch.zeros(4, dtype=torch.long)  # one class: no negatives
    assert triplet_mixture_loss_all(torch.cdist(e, e), same, LINEAR, 0.1).item() == 0.0
    assert margin_mixture_loss_all(torch.cdist(e, e), same, LINEAR, 0.1, 1.2).item() == 0.0


def test_bad_inputs():
    d = torch.ones(3)
    with pytest.raises(MetricLossError, match=r"distance transforms \['cube'\]; expected distinct names"):
        mixture_distance(d, torch.ones(1), ["cube"])
    with pytest.raises(MetricLossError, match="expected distinct names"):
        mixture_distance(d, torch.ones(2), ["linear", "linear"])
    with pytest.raises(MetricLossError, match=r"mixture weights phi has shape \(3,\); expected \(4,\)"):
        mixture_distance(d, torch.ones(3))
    with pytest.raises(MetricLossError, match=r"expected \(T,\) each"):
        triplet_mixture_loss(torch.ones(3), torch.ones(2), LINEAR, 0.1)
    with pytest.raises(MetricLossError, match=r"focal scales phi has shape \(3,\); expected \(2,\)"):
        focal_weighting_loss(torch.zeros(2, 2), torch.zeros(2, dtype=torch.long), torch.ones(3), 1.0)
    with pytest.raises(MetricLossError, match=r"expected \(N, N\) and \(N,\)"):
        focal_weighting_loss(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), torch.ones(2), 1.0)
    with pytest.raises(MetricLossError, match=r"phi_init=\[-1.0, 2.0\]; expected finite values in \[0.1, 50.0\]"):
        check_phi_values(torch.tensor([-1.0, 2.0]), 0.1, 50.0, "phi_init")
    with pytest.raises(MetricLossError, match="expected finite values"):
        check_phi_values(torch.tensor([float("nan")]), 0.0, 1.0, "phi")
