"""Expected BLEU, candidate weights, sequence log-probabilities and expected token accuracy."""

import pytest
import sacrebleu
import torch

from fairseq_dynloss.metrics import (
    append_reference,
    candidate_weights,
    expected_bleu,
    expected_token_accuracy,
    sequence_logprobs,
)

PAD, EOS, VOCAB = 1, 2, 9

# 2 sources x 3 candidates (right-padded), and their references.
CANDIDATES = torch.tensor([
    [[4, 5, 6, 7, 8, EOS], [4, 5, 6, EOS, PAD, PAD], [8, 7, EOS, PAD, PAD, PAD]],
    [[5, 5, 6, 6, EOS, PAD], [6, 7, 8, 4, 5, EOS], [4, 4, 4, 4, EOS, PAD]],
])
REFERENCES = torch.tensor([[4, 5, 6, 7, 9, EOS, PAD], [6, 7, 8, 4, 5, 6, EOS]])


def text(ids):
    return " ".join(str(t) for t in ids.tolist() if t not in (PAD, EOS))


def sacrebleu_scores(candidates, references):
    return torch.tensor([
        [sacrebleu.sentence_bleu(text(c), [text(r)], tokenize="none").score for c in cands]
        for cands, r in zip(candidates, references)
    ], dtype=torch.float64)


class TinyDecoder(torch.nn.Module):
    """p(y_t | y_<t) from the previous token only: enough to give every sequence a probability."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embed = torch.nn.Embedding(VOCAB, 4)
        self.out = torch.nn.Linear(4, VOCAB)

    def forward(self, tokens):
        previous = torch.cat([torch.full_like(tokens[..., :1], EOS), tokens[..., :-1]], dim=-1)
        return torch.log_softmax(self.out(self.embed(previous)), dim=-1)


def hand_sequence_logprobs(lprobs, tokens, normalize=False):
    values = []
    for row_lprobs, row in zip(lprobs, tokens):
        picked = [row_lprobs[t, token] for t, token in enumerate(row.tolist()) if token != PAD]
        total = sum(picked, torch.zeros((), dtype=lprobs.dtype))
        values.append(total / max(1, len(picked)) if normalize else total)
    return torch.stack(values)


@pytest.mark.parametrize("normalize", [False, True])
def test_sequence_logprobs_equals_hand_sum_and_ignores_pads(normalize):
    lprobs = torch.log_softmax(torch.randn(6, 6, VOCAB, dtype=torch.float64), dim=-1)
    tokens = CANDIDATES.flatten(0, 1)
    ours = sequence_logprobs(lprobs, tokens, PAD, normalize_length=normalize)
    torch.testing.assert_close(ours, hand_sequence_logprobs(lprobs, tokens, normalize))
    # What the model says at pad positions, even -inf, changes nothing.
    at_pads = lprobs.masked_fill((tokens == PAD)[..., None], float("-inf"))
    torch.testing.assert_close(sequence_logprobs(at_pads, tokens, PAD, normalize), ours)


def test_candidate_weights_are_a_sharpened_softmax():
    seq_logprobs = torch.tensor([[-3.0, -1.0, -2.0], [-0.5, -0.5, -4.0]], dtype=torch.float64)
    for alpha in (0.1, 1.0, 7.0):
        weights = candidate_weights(seq_logprobs, alpha)
        torch.testing.assert_close(weights.sum(-1), torch.ones(2, dtype=torch.float64))
        expected = torch.exp(alpha * seq_logprobs)
        torch.testing.assert_close(weights, expected / expected.sum(-1, keepdim=True))


def test_expected_bleu_equals_weighted_sacrebleu():
    seq_logprobs = torch.tensor([[-3.0, -1.0, -2.0], [-0.5, -2.5, -4.0]], dtype=torch.float64)
    alpha = 0.7
    ours = expected_bleu(CANDIDATES, seq_logprobs, REFERENCES, PAD, alpha=alpha, eos=EOS)
    weights = torch.softmax(alpha * seq_logprobs, dim=-1)
    expected = (weights * sacrebleu_scores(CANDIDATES, REFERENCES)).sum(-1)
    torch.testing.assert_close(ours, expected, atol=1e-8, rtol=0)


def test_pads_in_candidates_do_not_count():
    seq_logprobs = torch.randn(2, 3, dtype=torch.float64)
    wider = torch.nn.functional.pad(CANDIDATES, (0, 5), value=PAD)
    torch.testing.assert_close(
        expected_bleu(wider, seq_logprobs, REFERENCES, PAD, eos=EOS),
        expected_bleu(CANDIDATES, seq_logprobs, REFERENCES, PAD, eos=EOS),
    )


def test_append_reference_pads_and_keeps_candidates():
    joined = append_reference(CANDIDATES, REFERENCES, PAD)
    assert joined.shape == (2, 4, 7)
    assert torch.equal(joined[:, :3, :6], CANDIDATES)
    assert (joined[:, :3, 6:] == PAD).all()
    assert torch.equal(joined[:, 3], REFERENCES)


def test_most_probable_reference_with_large_alpha_gives_its_bleu():
    candidates = append_reference(CANDIDATES, REFERENCES, PAD)
    seq_logprobs = torch.tensor([[-3.0, -1.0, -2.0, -0.9], [-0.5, -2.5, -4.0, -0.1]],
                                dtype=torch.float64)
    ours = expected_bleu(candidates, seq_logprobs, REFERENCES, PAD, alpha=1e4, eos=EOS)
    torch.testing.assert_close(ours, torch.full((2,), 100.0, dtype=torch.float64))


def expected_bleu_of_model(weight, model, candidates):
    """Expected BLEU of ``candidates`` with the model's output weight replaced by ``weight``."""
    params = dict(model.named_parameters())
    params["out.weight"] = weight
    lprobs = torch.func.functional_call(model, params, (candidates,))
    seq_logprobs = sequence_logprobs(lprobs.flatten(0, 1), candidates.flatten(0, 1), PAD)
    return expected_bleu(candidates, seq_logprobs.view(candidates.shape[:2]), REFERENCES, PAD,
                         alpha=0.5, eos=EOS)


def test_expected_bleu_gradient_matches_finite_differences():
    model = TinyDecoder().double()
    weight = model.out.weight.detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda w: expected_bleu_of_model(w, model, CANDIDATES), (weight,), eps=1e-6, atol=1e-6
    )


def test_expected_token_accuracy_equals_hand_mean():
    model = TinyDecoder().double()
    target = CANDIDATES[:, 0]
    lprobs = model(target)
    ours = expected_token_accuracy(lprobs, target, PAD)
    probabilities = [lprobs[n, t, token].exp() for n, row in enumerate(target.tolist())
                     for t, token in enumerate(row) if token != PAD]
    torch.testing.assert_close(ours, torch.stack(probabilities).mean())
    weight = model.out.weight.detach().clone().requires_grad_(True)

    def accuracy(w):
        params = dict(model.named_parameters())
        params["out.weight"] = w
        return expected_token_accuracy(torch.func.functional_call(model, params, (target,)),
                                       target, PAD)

    assert torch.autograd.gradcheck(accuracy, (weight,), eps=1e-6, atol=1e-7)
