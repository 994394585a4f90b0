"""Batched sentence BLEU on token ids against sacrebleu on the same ids as text."""

import random

import pytest
import sacrebleu
import torch

from fairseq_dynloss.metrics import (
    BleuStats,
    bleu_stats,
    corpus_bleu_from_stats,
    sentence_bleu,
    strip_special,
)

PAD, EOS = 1, 2
SMOOTHING = [("exp", None), ("floor", None), ("floor", 0.01), ("add-k", None), ("add-k", 0.5),
             ("none", None)]

# (hypothesis, reference) cases every method must get right.
SPECIAL_PAIRS = [
    ([], [5, 6, 7]),                                # empty hypothesis
    ([5, 6, 7], []),                                # empty reference
    ([], []),                                       # both empty
    ([5, 6, 7, 8], [9, 10, 11, 12]),                # no matches
    ([5, 6, 7, 8, 5, 6, 7, 8, 9], [5, 6, 7, 8]),    # hypothesis longer than reference
    ([5, 6, 7, 8, 9, 10], [5, 6, 7, 8, 9, 10]),     # identical
    ([5], [5]),                                     # identical, shorter than max order
    ([5, 6], [5, 6, 7]),                            # short, brevity penalty
    ([5, 5, 5, 5, 5, 5], [5, 5, 9]),                # clipping
    ([5, 6, 5, 6, 5, 6], [6, 5, 6, 5]),             # clipped bigrams
    ([7, 5, 6, 8], [5, 6, 9, 7, 8]),                # unigram and one bigram match only
]


def random_pairs(count, seed):
    """Pairs of varied lengths (0..40) over small vocabularies, so n-grams often match."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(count):
        vocab = rng.choice([3, 6, 10, 40])
        ref = [rng.randrange(4, 4 + vocab) for _ in range(rng.randrange(0, 41))]
        if rng.random() < 0.5:  # a noisy copy of the reference, for higher-order matches
            hyp = [t if rng.random() < 0.7 else rng.randrange(4, 4 + vocab) for t in ref]
            hyp = hyp[: rng.randrange(0, len(hyp) + 1)] + [4] * rng.randrange(0, 4)
        else:
            hyp = [rng.randrange(4, 4 + vocab) for _ in range(rng.randrange(0, 41))]
        pairs.append((hyp, ref))
    return SPECIAL_PAIRS + pairs


def as_batch(sentences, eos=True, left_pad=False):
    """fairseq-style (N, L) batch: ``EOS`` after each sentence, ``PAD`` to a common length."""
    rows = [s + [EOS] if eos else list(s) for s in sentences]
    width = max(1, max(len(r) for r in rows))
    if left_pad:
        return torch.tensor([[PAD] * (width - len(r)) + r for r in rows])
    return torch.tensor([r + [PAD] * (width - len(r)) for r in rows])


def text(sentence):
    return " ".join(map(str, sentence))


def sacrebleu_sentence(pairs, smooth_method, smooth_value):
    return torch.tensor(
        [
            sacrebleu.sentence_bleu(
                text(h), [text(r)], tokenize="none",
                smooth_method=smooth_method, smooth_value=smooth_value,
            ).score
            for h, r in pairs
        ],
        dtype=torch.float64,
    )


PAIRS = random_pairs(1200, seed=0)
HYPS = as_batch([h for h, _ in PAIRS])
REFS = as_batch([r for _, r in PAIRS])


@pytest.mark.parametrize("smooth_method, smooth_value", SMOOTHING)
def test_sentence_bleu_equals_sacrebleu(smooth_method, smooth_value):
    expected = sacrebleu_sentence(PAIRS, smooth_method, smooth_value)
    ours = sentence_bleu(HYPS, REFS, pad=PAD, eos=EOS, smooth_method=smooth_method,
                         smooth_value=smooth_value)
    assert ours.dtype == torch.float64 and ours.shape == (len(PAIRS),)
    torch.testing.assert_close(ours, expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("smooth_method, smooth_value", SMOOTHING)
def test_special_pairs_equal_sacrebleu(smooth_method, smooth_value):
    special = SPECIAL_PAIRS
    ours = sentence_bleu(as_batch([h for h, _ in special]), as_batch([r for _, r in special]),
                         pad=PAD, eos=EOS, smooth_method=smooth_method, smooth_value=smooth_value)
    expected = sacrebleu_sentence(special, smooth_method, smooth_value)
    torch.testing.assert_close(ours, expected, atol=1e-4, rtol=0)
    assert ours[5].item() == pytest.approx(100.0)  # identical pair
    assert ours[0].item() == 0.0 and ours[3].item() == 0.0  # empty hypothesis, no matches


def test_statistics_equal_sacrebleu():
    stats = bleu_stats(HYPS, REFS, pad=PAD, eos=EOS)
    metric = sacrebleu.BLEU(tokenize="none")
    for index in range(0, len(PAIRS), 7):
        hyp, ref = PAIRS[index]
        score = metric.corpus_score([text(hyp)], [[text(ref)]])
        assert stats.matches[index].tolist() == score.counts
        assert stats.totals[index].tolist() == score.totals
        assert (stats.hyp_len[index].item(), stats.ref_len[index].item()) == (len(hyp), len(ref))


@pytest.mark.parametrize("smooth_method, smooth_value", SMOOTHING)
def test_corpus_bleu_from_summed_stats_equals_sacrebleu(smooth_method, smooth_value):
    expected = sacrebleu.corpus_bleu(
        [text(h) for h, _ in PAIRS], [[text(r) for _, r in PAIRS]], tokenize="none",
        smooth_method=smooth_method, smooth_value=smooth_value,
    ).score
    stats = bleu_stats(HYPS, REFS, pad=PAD, eos=EOS)
    # As fairseq logging would hold them: plain numbers summed over batches.
    halves = [bleu_stats(HYPS[part], REFS[part], pad=PAD, eos=EOS)
              for part in (slice(0, 500), slice(500, None))]
    summed = BleuStats(*[(a.sum(0) + b.sum(0)).tolist() for a, b in zip(*halves)])
    for given in (stats, summed):
        ours = corpus_bleu_from_stats(given, smooth_method=smooth_method,
                                      smooth_value=smooth_value)
        assert ours == pytest.approx(expected, abs=1e-4)


def test_padding_position_and_eos_do_not_matter():
    plain = sentence_bleu(as_batch([h for h, _ in PAIRS], eos=False),
                          as_batch([r for _, r in PAIRS], eos=False), pad=PAD)
    left = sentence_bleu(as_batch([h for h, _ in PAIRS], left_pad=True),
                         as_batch([r for _, r in PAIRS], left_pad=True), pad=PAD, eos=EOS)
    wide = torch.nn.functional.pad(HYPS, (0, 7), value=PAD)
    widened = sentence_bleu(wide, REFS, pad=PAD, eos=EOS)
    expected = sacrebleu_sentence(PAIRS, "exp", None)
    for ours in (plain, left, widened):
        torch.testing.assert_close(ours, expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("scale", [257, 65537, 2**40 + 3])
def test_large_ids_equal_sacrebleu(scale):
    """Ids of 2, 3 and 6 bytes (the matcher compares ids byte by byte)."""
    pairs = [([t * scale for t in h], [t * scale for t in r]) for h, r in PAIRS[:300]]
    ours = sentence_bleu(as_batch([h for h, _ in pairs]), as_batch([r for _, r in pairs]),
                         pad=PAD, eos=EOS)
    torch.testing.assert_close(ours, sacrebleu_sentence(pairs, "exp", None), atol=1e-4, rtol=0)


def test_negative_padding_id():
    hyps = torch.where(HYPS == PAD, -100, HYPS)
    refs = torch.where(REFS == PAD, -100, REFS)
    ours = sentence_bleu(hyps, refs, pad=-100, eos=EOS)
    torch.testing.assert_close(ours, sacrebleu_sentence(PAIRS, "exp", None), atol=1e-4, rtol=0)


def test_sentences_longer_than_255_tokens():
    rng = random.Random(1)
    pairs = []
    for _ in range(20):
        ref = [rng.randrange(30000, 30004) for _ in range(rng.randrange(250, 320))]
        hyp = [t if rng.random() < 0.8 else 30010 for t in ref][: rng.randrange(200, 320)]
        pairs.append((hyp, ref))
    ours = sentence_bleu(as_batch([h for h, _ in pairs]), as_batch([r for _, r in pairs]),
                         pad=PAD, eos=EOS)
    torch.testing.assert_close(ours, sacrebleu_sentence(pairs, "exp", None), atol=1e-4, rtol=0)


def test_calls_of_growing_and_shrinking_size_share_no_state():
    """The CPU tables are reused between calls: a small batch scored after a larger one (and a
    larger one after a small one) must not see the previous contents."""
    small = (as_batch([h for h, _ in PAIRS[:40]]), as_batch([r for _, r in PAIRS[:40]]))
    first = sentence_bleu(*small, pad=PAD, eos=EOS)
    everything = sentence_bleu(HYPS, REFS, pad=PAD, eos=EOS)
    torch.testing.assert_close(everything, sacrebleu_sentence(PAIRS, "exp", None),
                               atol=1e-4, rtol=0)
    torch.testing.assert_close(sentence_bleu(*small, pad=PAD, eos=EOS), first, atol=0, rtol=0)
    torch.testing.assert_close(first, sacrebleu_sentence(PAIRS[:40], "exp", None),
                               atol=1e-4, rtol=0)


def test_empty_batch():
    empty = torch.zeros(0, 5, dtype=torch.long)
    assert sentence_bleu(empty, empty, pad=PAD).shape == (0,)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_equals_cpu():
    ours = sentence_bleu(HYPS.cuda(), REFS.cuda(), pad=PAD, eos=EOS)
    assert ours.device.type == "cuda"
    torch.testing.assert_close(ours.cpu(), sacrebleu_sentence(PAIRS, "exp", None),
                               atol=1e-4, rtol=0)


def test_strip_special_hand_values():
    tokens = torch.tensor([[PAD, PAD, 7, 8, EOS], [7, EOS, 8, PAD, PAD], [PAD, PAD, PAD, PAD, PAD]])
    words, lengths = strip_special(tokens, PAD, EOS)
    assert words.tolist() == [[7, 8, PAD, PAD, PAD], [7, 8, PAD, PAD, PAD], [PAD] * 5]
    assert lengths.tolist() == [2, 2, 0]
