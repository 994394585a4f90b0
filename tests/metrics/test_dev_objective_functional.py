"""smoothed_dev_metric with a model applied through torch.func.functional_call."""

import pytest
import sacrebleu
import torch

from fairseq_dynloss.metrics import smoothed_dev_metric

PAD, EOS, VOCAB = 1, 2, 8

TARGET = torch.tensor([[4, 5, 6, 7, EOS], [6, 6, 5, EOS, PAD]])
CANDIDATES = torch.tensor([
    [[4, 5, 6, 7, EOS], [4, 5, 7, EOS, PAD], [7, 6, EOS, PAD, PAD]],
    [[6, 6, 5, EOS, PAD], [5, 6, EOS, PAD, PAD], [6, 6, 6, 6, EOS]],
])


class TinyDecoder(torch.nn.Module):
    """Plain-torch stand-in for a translation model: p(y_t | y_{t-1})."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embed = torch.nn.Embedding(VOCAB, 3)
        self.out = torch.nn.Linear(3, VOCAB)

    def forward(self, tokens):
        previous = torch.cat([torch.full_like(tokens[..., :1], EOS), tokens[..., :-1]], dim=-1)
        return torch.log_softmax(self.out(self.embed(previous)), dim=-1)


MODEL = TinyDecoder().double()


def model_fn(params, batch):
    """Teacher-forced log-probabilities of the candidates (bleu) or of the target."""
    tokens = batch["candidates"] if "candidates" in batch else batch["target"]
    return torch.func.functional_call(MODEL, params, (tokens,))


def own_params():
    return {name: p.detach().clone() for name, p in MODEL.named_parameters()}


def text(ids):
    return " ".join(str(t) for t in ids if t not in (PAD, EOS))


def test_token_accuracy_equals_direct_model_call():
    value = smoothed_dev_metric(model_fn, own_params(), {"target": TARGET}, PAD)
    lprobs = MODEL(TARGET).detach()
    expected = torch.stack([lprobs[n, t, y].exp() for n, row in enumerate(TARGET.tolist())
                            for t, y in enumerate(row) if y != PAD]).mean()
    torch.testing.assert_close(value, expected)


def test_bleu_equals_weighted_sacrebleu():
    batch = {"candidates": CANDIDATES, "target": TARGET}
    value = smoothed_dev_metric(model_fn, own_params(), batch, PAD, metric="bleu", alpha=2.0,
                                eos=EOS)
    lprobs = MODEL(CANDIDATES).detach()
    seq = lprobs.gather(-1, CANDIDATES.unsqueeze(-1)).squeeze(-1)
    seq = seq.masked_fill(CANDIDATES == PAD, 0).sum(-1)
    weights = torch.softmax(2.0 * seq, dim=-1)
    scores = torch.tensor([[sacrebleu.sentence_bleu(text(c.tolist()), [text(r.tolist())],
                                                    tokenize="none").score for c in cands]
                           for cands, r in zip(CANDIDATES, TARGET)], dtype=torch.float64)
    torch.testing.assert_close(value, (weights * scores).sum(-1).mean())


@pytest.mark.parametrize("metric", ["token_accuracy", "bleu"])
def test_gradient_through_one_unrolled_step_matches_finite_differences(metric):
    """d metric(omega_1) / d eta with omega_1 = omega_0 - eta * grad NLL(omega_0): the shape
    of a teacher's hypergradient."""
    start = own_params()
    batch = {"candidates": CANDIDATES, "target": TARGET} if metric == "bleu" else {"target": TARGET}

    def after_one_step(learning_rate):
        params = {name: p.clone().requires_grad_(True) for name, p in start.items()}
        lprobs = torch.func.functional_call(MODEL, params, (TARGET,))
        nll = -lprobs.gather(-1, TARGET.unsqueeze(-1)).squeeze(-1)[TARGET != PAD].mean()
        grads = torch.autograd.grad(nll, list(params.values()), create_graph=True)
        stepped = {name: p - learning_rate * g for (name, p), g in zip(params.items(), grads)}
        return smoothed_dev_metric(model_fn, stepped, batch, PAD, metric=metric, eos=EOS)

    learning_rate = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    (gradient,) = torch.autograd.grad(after_one_step(learning_rate), learning_rate)
    assert gradient.abs().item() > 1e-6  # the check below is not trivially 0 == 0
    assert torch.autograd.gradcheck(after_one_step, (learning_rate,), eps=1e-6, atol=1e-6)
