"""Error rate, one-vs-rest AUCPR and recall@k against hand-computed and scikit-learn values."""

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

from fairseq_dynloss.metrics import (
    aucpr_one_vs_rest,
    error_rate,
    expected_accuracy,
    nearest_neighbours,
    recall_at_k,
)


def test_error_rate_by_hand():
    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0], [0.0, 1.0]])
    assert error_rate(logits, torch.tensor([0, 1, 1, 1])) == pytest.approx(25.0)


def test_aucpr_is_the_mean_of_sklearn_average_precision_over_classes():
    rng = np.random.default_rng(0)
    scores, target = rng.normal(size=(50, 3)), rng.integers(0, 3, 50)
    expected = np.mean([average_precision_score(target == c, scores[:, c]) for c in range(3)])
    assert aucpr_one_vs_rest(torch.tensor(scores), torch.tensor(target)) == pytest.approx(100 * expected)


def test_aucpr_hand_computed_binary_case():
    # Class 1 scores: positives ranked 1st and 3rd -> AP = (1/1 + 2/3) / 2.
    scores = torch.tensor([[0.0, 0.9], [0.0, 0.8], [0.0, 0.7], [0.0, 0.1]])
    target = torch.tensor([1, 0, 1, 0])
    ap1 = (1 + 2 / 3) / 2
    ap0 = average_precision_score(np.array([0, 1, 0, 1]), np.zeros(4))
    assert aucpr_one_vs_rest(scores, target) == pytest.approx(100 * (ap0 + ap1) / 2)


def test_expected_accuracy_is_the_mean_target_probability():
    logits = torch.log(torch.tensor([[0.7, 0.3], [0.2, 0.8]]))
    assert expected_accuracy(logits, torch.tensor([0, 0])).item() == pytest.approx((0.7 + 0.2) / 2)


def test_recall_at_k_on_points_on_a_line():
    # 1-D points; neighbours by distance. Labels: a a b b a.
    points = torch.tensor([[0.0], [1.0], [2.1], [3.3], [10.0]])
    labels = torch.tensor([0, 0, 1, 1, 0])
    # Nearest of 0 -> 1 (hit); of 1 -> 0 (hit); of 2.1 -> 1.0 (miss); of 3.3 -> 2.1 (hit);
    # of 10 -> 3.3 (miss). 2nd nearest: 2.1 -> 3.3 (hit); 10 -> 2.1 (miss); 3rd: 10 -> 1.0 (hit).
    recall = recall_at_k(points, labels, ks=(1, 2, 3, 1000))
    assert recall == {1: pytest.approx(60.0), 2: pytest.approx(80.0), 3: pytest.approx(100.0)}


def test_nearest_neighbours_exclude_self_and_match_brute_force_across_chunks():
    torch.manual_seed(0)
    emb = torch.randn(37, 5)
    found = nearest_neighbours(emb, 6, chunk_size=8)
    dist = torch.cdist(emb, emb)
    dist.fill_diagonal_(float("inf"))
    assert torch.equal(found, dist.topk(6, largest=False).indices)
    assert not found.eq(torch.arange(37)[:, None]).any()
    with pytest.raises(ValueError, match="k=37"):
        nearest_neighbours(emb, 37)
