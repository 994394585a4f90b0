"""ALA states: confusion matrix (full and bucketed) by hand, pair features, distance statistics."""

import math

import pytest
import torch

from fairseq_dynloss.controllers import (
    ConfusionAccumulator, ControllerError, StateHistory, confusion_state, controlled_pairs,
    distance_statistics, element_features, pair_feature_size, pair_features,
)

PROBS = torch.tensor([[0.5, 0.25, 0.25], [0.25, 0.5, 0.25], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]],
                     dtype=torch.float64)
TARGET = torch.tensor([0, 0, 1, 1])  # class 2 has no example
L = math.log


def test_confusion_state_by_hand():
    C, counts = confusion_state(PROBS.log(), TARGET, 3, return_counts=True)
    expected = torch.tensor([
        [-(L(0.5) + L(0.25)) / 2, -(L(0.25) + L(0.5)) / 2, -L(0.25)],
        [-(L(0.1) + L(0.2)) / 2, -(L(0.8) + L(0.2)) / 2, -(L(0.1) + L(0.6)) / 2],
        [L(3), L(3), L(3)],  # no example of class 2: the uniform prediction's value
    ], dtype=torch.float64)
    torch.testing.assert_close(C, expected)
    assert counts.tolist() == [2, 2, 0]
    C_nan = confusion_state(PROBS.log(), TARGET, 3, empty_value=float("nan"))
    assert torch.isnan(C_nan[2]).all() and torch.isfinite(C_nan[:2]).all()


def test_bucketed_confusion_state_by_hand():
    buckets = torch.tensor([1, 1, 0])  # classes 0, 1 -> bucket 1; class 2 -> bucket 0
    C, counts = confusion_state(PROBS.log(), TARGET, 3, buckets=buckets, return_counts=True)
    # every example's target is in bucket 1; bucket 0 has no example
    col1 = sum(-(L(p[0]) + L(p[1])) / 2 for p in PROBS.tolist()) / 4
    col0 = sum(-L(p[2]) for p in PROBS.tolist()) / 4
    expected = torch.tensor([[L(3), L(3)], [col0, col1]], dtype=torch.float64)
    torch.testing.assert_close(C, expected)
    assert counts.tolist() == [0, 4]
    # uniform predictions give log C everywhere, full and bucketed alike
    uniform = torch.full((5, 3), -L(3))
    torch.testing.assert_close(confusion_state(uniform, torch.tensor([0, 1, 2, 0, 1]), 3, buckets=buckets),
                               torch.full((2, 2), L(3)))


def test_accumulator_streams_batches_and_keeps_dtype():
    acc = ConfusionAccumulator(3)
    acc.update(PROBS[:1].log().float(), TARGET[:1])
    acc.update(PROBS[1:].log().float(), TARGET[1:])
    C = acc.compute()
    assert C.dtype == torch.float32
    torch.testing.assert_close(C, confusion_state(PROBS.log(), TARGET, 3).float())


@pytest.mark.parametrize("make, message", [
    (lambda: confusion_state(PROBS.log(), TARGET, 4), r"expected \(N, 4\)"),
    (lambda: confusion_state(PROBS.log(), torch.tensor([0, 0, 1, 3]), 3), r"expected ids in \[0, 3\)"),
    (lambda: confusion_state(PROBS.log(), TARGET[:3], 3), r"expected \(4,\)"),
    (lambda: confusion_state(PROBS.log(), TARGET.float(), 3), "integer class ids"),
    (lambda: confusion_state(torch.full((2, 3), -math.inf), TARGET[:2], 3), "non-finite"),
    (lambda: confusion_state(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long), 3), "empty validation set"),
    (lambda: confusion_state(PROBS.log(), TARGET, 3, buckets=torch.tensor([0, 2, 2])), "every bucket id"),
    (lambda: confusion_state(PROBS.log(), TARGET, 3, buckets=torch.tensor([0, 1])), r"expected \(3,\)"),
    (lambda: confusion_state(PROBS.log(), TARGET, 0), "num_classes=0"),
])
def test_confusion_state_errors(make, message):
    with pytest.raises(ControllerError, match=message):
        make()


def naive_features(C, phi, history, progress, pairs, scale=1.0):
    """The standardised features written out element by element (float64)."""
    n = C.shape[0]
    off = [(a, b) for a in range(n) for b in range(n) if a != b]

    def z(m, floor):
        vals = torch.tensor([m[a][b] for a, b in off], dtype=torch.float64)
        mean, std = vals.mean().item(), max(vals.std(unbiased=False).item(), floor)
        return lambda a, b: max(-3.0, min(3.0, (m[a][b] - mean) / std))

    L = [[math.log(max(C[a, b].item(), 1e-6)) for b in range(n)] for a in range(n)]
    rel = [[L[a][b] - L[a][a] for b in range(n)] for a in range(n)]
    zs = [z(L, 0.1), z(rel, 0.1)]
    for H in history:
        change = [[L[a][b] - math.log(max(H[a, b].item(), 1e-6)) for b in range(n)] for a in range(n)]
        zs.append(z(change, 0.01))
    rows = []
    for a, b in pairs.tolist():
        row = []
        for f in zs:
            row += [f(a, b), f(b, a)]
        rows.append(row + [progress, phi[a, b].item() / scale, float(a == b)])
    return torch.tensor(rows, dtype=torch.float64)


def test_pair_features_equal_a_naive_computation_on_realistic_unnormalised_c():
    """A confident student: C_ij in 2..25 off the diagonal, C_ii ~ 0.01 (not a toy scale)."""
    g = torch.Generator().manual_seed(0)
    n = 10
    C = 2.0 + 23.0 * torch.rand(n, n, generator=g)
    C.diagonal().copy_(0.005 + 0.02 * torch.rand(n, generator=g))
    H = C * (1 + 0.1 * torch.rand(n, n, generator=g))
    phi = 0.01 * torch.randn(n, n, generator=g)
    pairs = controlled_pairs(n, include_diagonal=True)
    feats = pair_features(C, phi, [H], progress=0.25, pairs=pairs, value_scale=0.1)
    assert feats.shape == (n * n, pair_feature_size(1)) == (100, 9)
    torch.testing.assert_close(feats.double(), naive_features(C, phi, [H], 0.25, pairs, 0.1), rtol=1e-5, atol=1e-5)
    # standardised: the off-diagonal rows' level and relative columns have mean 0, std 1 (not 2..25)
    rows = pairs[:, 0] != pairs[:, 1]
    for column in (0, 2):
        assert abs(feats[rows, column].mean().item()) < 0.05
        assert feats[rows, column].std(unbiased=False).item() == pytest.approx(1.0, abs=0.05)
    assert feats.abs().max() <= 3.0 + 1e-6  # inside tanh's working range
    # the diagonal flag and the default pairs (i != j)
    assert feats[:, -1].tolist() == [float(i == j) for i, j in pairs.tolist()]
    assert pair_features(C, phi).shape == (90, pair_feature_size(0))


def test_pair_features_of_a_constant_state_are_zero_not_amplified_noise():
    C = torch.full((4, 4), 2.302585) + 1e-4 * torch.randn(4, 4, generator=torch.Generator().manual_seed(0))
    feats = pair_features(C, torch.zeros(4, 4), [C], 0.0)
    assert feats[:, :6].abs().max() < 0.01  # the spread floor: 1e-4 differences stay ~0


def test_pair_features_errors():
    C, phi = torch.ones(3, 3) + 1, torch.zeros(3, 3)
    assert controlled_pairs(3).tolist() == [[0, 1], [0, 2], [1, 0], [1, 2], [2, 0], [2, 1]]
    assert controlled_pairs(2, include_diagonal=True).shape == (4, 2)
    with pytest.raises(ControllerError, match="progress=1.5"):
        pair_features(C, phi, progress=1.5)
    with pytest.raises(ControllerError, match=r"phi_values has shape \(2, 2\)"):
        pair_features(C, torch.zeros(2, 2))
    with pytest.raises(ControllerError, match=r"history\[0\] has shape"):
        pair_features(C, phi, [torch.zeros(2, 2)])
    with pytest.raises(ControllerError, match=r"expected ids in \[0, 3\)"):
        pair_features(C, phi, pairs=torch.tensor([[0, 3]]))
    with pytest.raises(ControllerError, match="value_scale=0"):
        pair_features(C, phi, value_scale=0)
    # non-finite inputs are named (one check over the stacked matrices finds them)
    with pytest.raises(ControllerError, match="confusion state C has 1 non-finite"):
        pair_features(C.clone().fill_diagonal_(2.0).index_put_((torch.tensor(0), torch.tensor(1)),
                                                              torch.tensor(math.nan)), phi)
    with pytest.raises(ControllerError, match=r"history\[1\] has 9 non-finite"):
        pair_features(C, phi, [C, torch.full((3, 3), math.inf)])


def test_state_history_pads_then_rolls():
    hist = StateHistory(2)
    a, b, c = torch.zeros(2, 2), torch.ones(2, 2), 2 * torch.ones(2, 2)
    assert [m[0, 0].item() for m in hist.matrices(a)] == [0.0, 0.0]
    hist.push(a)
    hist.push(b)
    hist.push(c)
    assert [m[0, 0].item() for m in hist.matrices(a)] == [2.0, 1.0]
    other = StateHistory(2)
    other.load_state_dict(hist.state_dict())
    assert [m[0, 0].item() for m in other.matrices(a)] == [2.0, 1.0]
    with pytest.raises(ControllerError, match="length 3; expected length 2"):
        StateHistory(2).load_state_dict({"length": 3, "states": []})


def test_distance_statistics_by_hand():
    stats = distance_statistics(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([4.0, 6.0]))
    expected = [2.0, math.sqrt(2 / 3), 1.2, 2.0, 2.8, 5.0, 1.0, 4.2, 5.0, 5.8]
    torch.testing.assert_close(stats, torch.tensor(expected))
    assert distance_statistics(torch.tensor([1.0]), torch.tensor([2.0]), quantiles=()).tolist() == [1.0, 0.0, 2.0, 0.0]
    with pytest.raises(ControllerError, match="negative distances: empty"):
        distance_statistics(torch.tensor([1.0]), torch.tensor([]))
    with pytest.raises(ControllerError, match="quantiles"):
        distance_statistics(torch.tensor([1.0]), torch.tensor([2.0]), quantiles=(1.5,))


def test_element_features():
    feats = element_features(torch.tensor([1.0, 2.0]), torch.tensor([0.5, 3.0]), 0.5, [torch.tensor([7.0, 8.0])])
    torch.testing.assert_close(feats, torch.tensor([[1.0, 2.0, 7.0, 8.0, 0.5, 0.5, 1.0, 0.0],
                                                    [1.0, 2.0, 7.0, 8.0, 0.5, 3.0, 0.0, 1.0]]))
