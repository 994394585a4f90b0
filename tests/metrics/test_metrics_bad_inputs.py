"""Bad input to the metrics raises ValueError naming the value and what was expected."""

import math

import pytest
import torch

from fairseq_dynloss.metrics import (
    BleuStats,
    append_reference,
    bleu_from_stats,
    candidate_weights,
    corpus_bleu_from_stats,
    expected_bleu,
    expected_token_accuracy,
    sentence_bleu,
    sequence_logprobs,
    smoothed_dev_metric,
)

PAD = 1
HYPS = torch.tensor([[4, 5, 6], [5, 6, PAD]])
REFS = torch.tensor([[4, 5, 6, 7], [5, 6, 7, PAD]])
CANDIDATES = torch.tensor([[[4, 5, 6], [4, 5, PAD]], [[5, 6, PAD], [6, PAD, PAD]]])
SEQ_LOGPROBS = torch.tensor([[-1.0, -2.0], [-0.5, -3.0]])
STATS = BleuStats(torch.tensor([[3, 2, 1, 0]]), torch.tensor([[3, 2, 1, 0]]),
                  torch.tensor([3]), torch.tensor([4]))


@pytest.mark.parametrize("call, message", [
    (lambda: sentence_bleu(HYPS, REFS, PAD, smooth_method="bogus"), "smooth_method='bogus'"),
    (lambda: bleu_from_stats(STATS, smooth_method="Exp"), "smooth_method='Exp'"),
    (lambda: corpus_bleu_from_stats(STATS, smooth_method="add_k"), "smooth_method='add_k'"),
    (lambda: expected_bleu(CANDIDATES, SEQ_LOGPROBS, REFS, PAD, smooth_method="x"),
     "smooth_method='x'"),
])
def test_unknown_smoothing_method(call, message):
    with pytest.raises(ValueError, match=message + r".*expected one of"):
        call()


@pytest.mark.parametrize("alpha", [0, 0.0, -1.0, math.nan, math.inf])
def test_alpha_must_be_positive(alpha):
    with pytest.raises(ValueError, match=r"alpha=.*expected a finite number > 0"):
        candidate_weights(SEQ_LOGPROBS, alpha)
    with pytest.raises(ValueError, match=r"alpha=.*expected a finite number > 0"):
        expected_bleu(CANDIDATES, SEQ_LOGPROBS, REFS, PAD, alpha=alpha)


def test_at_least_one_candidate():
    with pytest.raises(ValueError, match="number of candidates is 0; expected at least 1"):
        expected_bleu(CANDIDATES[:, :0], SEQ_LOGPROBS[:, :0], REFS, PAD)


@pytest.mark.parametrize("call, message", [
    (lambda: sentence_bleu(HYPS, REFS[:1], PAD), "hyps has 2 sentences and refs has 1"),
    (lambda: expected_bleu(CANDIDATES, SEQ_LOGPROBS[:1], REFS, PAD),
     r"seq_logprobs has shape \(1, 2\); expected \(2, 2\)"),
    (lambda: expected_bleu(CANDIDATES, SEQ_LOGPROBS, REFS[:1], PAD),
     r"references has shape \(1, 4\); expected \(2, length\)"),
    (lambda: append_reference(CANDIDATES, REFS[:1], PAD),
     "candidates has batch size 2 and references 1"),
    (lambda: sequence_logprobs(torch.zeros(3, 3, 9), HYPS, PAD),
     r"lprobs has shape \(3, 3, 9\) and tokens \(2, 3\)"),
    (lambda: expected_token_accuracy(torch.zeros(2, 4, 9), HYPS, PAD),
     r"lprobs has shape \(2, 4, 9\) and target \(2, 3\)"),
])
def test_mismatched_batch_sizes(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize("call, message", [
    (lambda: sentence_bleu(HYPS.float(), REFS, PAD), "hyps has dtype torch.float32"),
    (lambda: sentence_bleu(HYPS, REFS[0], PAD), r"refs has shape \(4,\)"),
    (lambda: sentence_bleu(HYPS - 10, REFS, PAD),
     r"token ids span \[-9, -4\]; expected ids >= 0"),
    (lambda: expected_bleu(HYPS, SEQ_LOGPROBS, REFS, PAD), r"candidates has shape \(2, 3\)"),
    (lambda: corpus_bleu_from_stats(BleuStats([1, 0, 0], [1, 0, 0], 1, 1)),
     r"stats.matches has shape \(3,\)"),
    (lambda: expected_token_accuracy(torch.zeros(2, 3, 9), torch.full((2, 3), PAD), PAD),
     "target has no tokens other than pad=1"),
    (lambda: smoothed_dev_metric(lambda p, b: None, {}, {"target": HYPS}, PAD, metric="ter"),
     "metric='ter'"),
    (lambda: smoothed_dev_metric(lambda p, b: torch.zeros(2, 3, 9), {},
                                 {"target": REFS, "candidates": CANDIDATES}, PAD, metric="bleu"),
     r"model_fn returned shape \(2, 3, 9\)"),
])
def test_malformed_inputs(call, message):
    with pytest.raises(ValueError, match=message):
        call()
