"""hypergradient through real fairseq students (toy LSTM and transformer, float32, dropout on)."""

import argparse

import pytest
import torch

fairseq = pytest.importorskip("fairseq")
from fairseq.data import Dictionary  # noqa: E402
from fairseq.models import lstm, transformer  # noqa: E402

from fairseq_dynloss.hypergrad import SGD, Adam, FunctionalModule, hypergradient, naive_hypergradient  # noqa: E402
from hypergrad_device import device  # noqa: E402,F401 (a fixture)

STEPS = 4
BATCH, SRC_LEN, TGT_LEN = 3, 5, 4


class _Task:
    """What ``build_model`` reads from a fairseq task: the two dictionaries."""

    def __init__(self, dictionary):
        self.source_dictionary = self.target_dictionary = dictionary


def _dictionary():
    d = Dictionary()
    for i in range(12):
        d.add_symbol(f"w{i}")
    return d


def _transformer(d):
    args = argparse.Namespace(
        encoder_embed_dim=16, encoder_ffn_embed_dim=32, encoder_layers=1, encoder_attention_heads=2,
        decoder_embed_dim=16, decoder_ffn_embed_dim=32, decoder_layers=1, decoder_attention_heads=2,
        dropout=0.2, attention_dropout=0.1, share_all_embeddings=True,
        max_source_positions=32, max_target_positions=32,
    )  # fmt: skip
    transformer.base_architecture(args)
    return transformer.TransformerModel.build_model(args, _Task(d))


def _lstm(d):
    args = argparse.Namespace(
        encoder_embed_dim=16, encoder_hidden_size=16, decoder_embed_dim=16, decoder_hidden_size=16,
        decoder_out_embed_dim=16, encoder_layers=1, decoder_layers=1, dropout=0.2,
        share_all_embeddings=True, criterion="cross_entropy",
    )  # fmt: skip
    lstm.base_architecture(args)
    return lstm.LSTMModel.build_model(args, _Task(d))


def _samples(d, gen, device):
    def tokens(length):
        return torch.randint(d.nspecial, len(d), (BATCH, length), generator=gen).to(device)

    return [
        {
            "src_tokens": tokens(SRC_LEN),
            "src_lengths": torch.full((BATCH,), SRC_LEN, device=device),
            "prev_output_tokens": tokens(TGT_LEN),
            "target": tokens(TGT_LEN),
        }
        for _ in range(STEPS + 1)
    ]


def _problem(build, device):
    torch.manual_seed(0)
    d = _dictionary()
    model = build(d).to(device).train()
    student = FunctionalModule(model)
    samples = _samples(d, torch.Generator().manual_seed(1), device)
    train, dev = samples[:STEPS], samples[STEPS]
    hparams = {"token_weight": torch.zeros(len(d), device=device)}

    def nll(params, sample):
        logits, _ = student(params, sample["src_tokens"], sample["src_lengths"], sample["prev_output_tokens"])
        lprobs = torch.log_softmax(logits.float(), dim=-1)
        return -lprobs.gather(-1, sample["target"].unsqueeze(-1)).squeeze(-1)

    def inner(params, h, sample, step):
        weights = torch.softmax(h["token_weight"], 0)[sample["target"]] * len(d)
        return (nll(params, sample) * weights).mean()

    def outer(params):
        return nll(params, dev).mean()

    return model, student, inner, outer, hparams, train


@pytest.mark.parametrize("optimizer", [SGD(lr=0.5, momentum=0.9), Adam(lr=0.01)], ids=["momentum", "adam"])
@pytest.mark.parametrize("build", [_lstm, _transformer], ids=["lstm", "transformer"])
def test_fairseq_student_equals_naive_unroll(build, optimizer, device):
    model, student, inner, outer, hparams, train = _problem(build, device)
    # cuDNN's LSTM has no double backward (kernels.py); it is only used on CUDA.
    no_cudnn = build is _lstm and device.type == "cuda"
    torch.manual_seed(5)
    want = naive_hypergradient(inner, outer, student.params(), hparams, train, optimizer, disable_cudnn=no_cudnn)
    torch.manual_seed(5)
    got = hypergradient(
        inner, outer, student.params(), hparams, train, optimizer, checkpoint_every=2, disable_cudnn=no_cudnn
    )
    assert got.finite
    assert want.grads["token_weight"].norm() > 1e-4
    torch.testing.assert_close(got.grads["token_weight"], want.grads["token_weight"], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(got.outer_loss, want.outer_loss, rtol=1e-5, atol=0)


@pytest.mark.parametrize("build", [_lstm, _transformer], ids=["lstm", "transformer"])
def test_shared_embeddings_stay_tied_and_trainable(build, device):
    model, student, inner, outer, hparams, train = _problem(build, device)
    tied = model.encoder.embed_tokens.weight
    assert model.decoder.embed_tokens.weight is tied
    slots_before = [(name, p) for name, p in model.named_parameters(remove_duplicate=False)]
    no_cudnn = build is _lstm and device.type == "cuda"
    hypergradient(
        inner, outer, student.params(), hparams, train, SGD(lr=0.5), checkpoint_every=2, disable_cudnn=no_cudnn
    )

    slots_after = list(model.named_parameters(remove_duplicate=False))
    assert [n for n, _ in slots_after] == [n for n, _ in slots_before]
    assert all(p_after is p_before for (_, p_after), (_, p_before) in zip(slots_after, slots_before))
    before = tied.detach().clone()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sample = train[0]
    logits, _ = model(sample["src_tokens"], sample["src_lengths"], sample["prev_output_tokens"])
    torch.nn.functional.cross_entropy(logits.flatten(0, 1), sample["target"].flatten()).backward()
    opt.step()
    assert not torch.equal(model.encoder.embed_tokens.weight, before)
    assert model.decoder.embed_tokens.weight is model.encoder.embed_tokens.weight is tied
