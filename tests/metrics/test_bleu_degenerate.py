"""Table-driven BLEU-from-statistics cases, after sacrebleu's own test_bleu.py."""

import pytest
import sacrebleu
import torch
from sacrebleu.metrics.bleu import BLEU

from fairseq_dynloss.metrics import BleuStats, bleu_from_stats, bleu_stats, sentence_bleu


def one_row(matches, totals, hyp_len, ref_len):
    return BleuStats(torch.tensor([matches]), torch.tensor([totals]),
                     torch.tensor([hyp_len]), torch.tensor([ref_len]))


# ((matches, totals, hyp_len, ref_len), floor smooth_value, expected BLEU / 100); sacrebleu's
# test_case_degenerate_stats (no effective order).
DEGENERATE = [
    (([0, 0, 0, 0], [4, 4, 2, 1], 0, 1), 0.0, 0.0),
    (([0, 0, 0, 0], [10, 11, 12, 0], 14, 10), 0.0, 0.0),
    (([0, 0, 0, 0], [0, 0, 0, 0], 0, 0), 0.0, 0.0),
    (([6, 5, 4, 0], [6, 5, 4, 3], 6, 6), 0.0, 0.0),
    (([0, 0, 0, 0], [0, 0, 0, 0], 0, 0), 0.1, 0.0),
    (([0, 0, 0, 0], [0, 0, 0, 0], 1, 5), 0.01, 0.0),
]


@pytest.mark.parametrize("stats, offset, expected", DEGENERATE)
def test_degenerate_statistics(stats, offset, expected):
    score = bleu_from_stats(one_row(*stats), smooth_method="floor", smooth_value=offset,
                            effective_order=False)
    assert score.item() / 100 == expected


def test_scoring_hand_value():
    # sacrebleu's test_case_scoring: no smoothing, no effective order.
    score = bleu_from_stats(one_row([9, 7, 5, 3], [10, 8, 6, 4], 11, 11), smooth_method="none",
                            effective_order=False)
    assert score.item() / 100 == pytest.approx(0.8375922397, abs=1e-8)


# sacrebleu's test_case_effective_order (raw_corpus_bleu: floor 0.01, effective order), with
# words as ids: a=5, test=6, little=7.
@pytest.mark.parametrize("hyp, ref, expected", [
    ([6], [5, 6], 0.3678794411714425),
    ([5, 6], [5, 6], 1.0),
    ([5, 7, 6], [5, 6], 0.03218297948685433),
])
def test_effective_order_hand_values(hyp, ref, expected):
    score = sentence_bleu(torch.tensor([hyp]), torch.tensor([ref]), pad=1, smooth_method="floor",
                          smooth_value=0.01)
    assert score.item() / 100 == pytest.approx(expected, abs=1e-8)


# Statistics that reach every branch of compute_bleu, for every method, with and without
# effective order: zero totals from some order on, zero matches in the middle, all matches,
# zero lengths.
STATS = [
    ([0, 0, 0, 0], [0, 0, 0, 0], 0, 0),
    ([0, 0, 0, 0], [0, 0, 0, 0], 0, 3),
    ([1, 0, 0, 0], [1, 0, 0, 0], 1, 1),
    ([2, 1, 0, 0], [2, 1, 0, 0], 2, 5),
    ([3, 0, 1, 0], [5, 4, 3, 2], 5, 4),
    ([4, 3, 2, 1], [4, 3, 2, 1], 4, 4),
    ([3, 1, 0, 0], [9, 8, 7, 6], 9, 12),
    ([0, 2, 0, 0], [3, 2, 1, 0], 3, 3),
    ([12, 8, 6, 3], [15, 14, 13, 12], 15, 30),
]


@pytest.mark.parametrize("smooth_method", ["exp", "floor", "add-k", "none"])
@pytest.mark.parametrize("effective_order", [True, False])
def test_bleu_from_stats_equals_compute_bleu(smooth_method, effective_order):
    batch = BleuStats(torch.tensor([s[0] for s in STATS]), torch.tensor([s[1] for s in STATS]),
                      torch.tensor([s[2] for s in STATS]), torch.tensor([s[3] for s in STATS]))
    ours = bleu_from_stats(batch, smooth_method=smooth_method, effective_order=effective_order)
    expected = [
        BLEU.compute_bleu(list(m), list(t), h, r, smooth_method=smooth_method,
                          effective_order=effective_order).score
        for m, t, h, r in STATS
    ]
    torch.testing.assert_close(ours, torch.tensor(expected, dtype=torch.float64), atol=1e-10,
                               rtol=1e-12)


def test_statistics_hand_values():
    # sacrebleu's test_case_statistics, words as ids: am=5 I=6 a=7 character=8 sequence=9
    # symbol=10 string=11.
    hyp = torch.tensor([[5, 6, 5, 7, 8, 9]])
    ref = torch.tensor([[6, 5, 7, 10, 11, 9, 7, 7]])
    score = sacrebleu.sentence_bleu("am I am a character sequence",
                                    ["I am a symbol string sequence a a"])
    ours = sentence_bleu(hyp, ref, pad=1)
    stats = bleu_stats(hyp, ref, pad=1)
    assert stats.matches[0].tolist() == [4, 2, 1, 0] == score.counts
    assert stats.totals[0].tolist() == [6, 5, 4, 3] == score.totals
    assert ours.item() == pytest.approx(score.score, abs=1e-10)
