"""expected_bleu: registration, equality with the formula computed independently (per candidate,
BLEU by sacrebleu), gradients, candidate generation, logging, and bad options."""

import math

import pytest
import sacrebleu
import torch

import fairseq  # noqa: F401  (import before the plugin so it registers with fairseq)
import fairseq_dynloss

# Explicitly: if another test module imported the package before fairseq, its import-time
# registration did not run (idempotent).
fairseq_dynloss.register_with_fairseq()
from fairseq_dynloss.criterions import candidates as candidates_module
from fairseq_dynloss.criterions import sequence_base

from tiny_fairseq import build, first_batch

SEQ_CRITERIA = ("expected_bleu", "reinforce_bleu", "actor_critic_bleu", "softmax_margin")


def fixed_candidates(task, sample, n, seed=0):
    """Hand-made candidates: reference fragments, shuffles and random words, each ending with eos."""
    d = task.target_dictionary
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for ref in sample["target"]:
        words = ref[(ref != d.pad()) & (ref != d.eos())]
        row = []
        for k in range(n):
            if k == 0:
                cand = words.clone()
            elif k == 1:
                cand = words[: max(1, len(words) // 2)]
            else:
                size = int(torch.randint(1, len(words) + 3, (1,), generator=gen))
                cand = torch.randint(d.nspecial, len(d), (size,), generator=gen)
            row.append(torch.cat([cand, torch.tensor([d.eos()])]))
        rows.append(row)
    return candidates_module.pad_candidates(rows, n, d.pad())


def use_candidates(monkeypatch, tokens):
    """Make the criterion score these candidates instead of generating its own."""
    monkeypatch.setattr(sequence_base, "generate_candidates",
                        lambda task, model, sample, cfg: candidates_module.CandidateSet(tokens, sample["target"]))


def words(tokens, d):
    kept = [t for t in tokens.tolist() if t not in (d.pad(), d.eos())]
    return " ".join(map(str, kept))


def sacre_bleu(hyp, ref, d):
    return sacrebleu.sentence_bleu(words(hyp, d), [words(ref, d)], tokenize="none").score


def token_logprobs_one(model, sample, i, tokens, d):
    """Teacher-forced log p(y_t | y_<t, x_i) of one unpadded candidate, one sentence at a time."""
    tokens = tokens[tokens != d.pad()]
    prev = torch.cat([torch.tensor([d.eos()]), tokens[:-1]])[None]
    src = sample["net_input"]["src_tokens"][i : i + 1]
    src = src[:, src[0] != d.pad()]
    out = model(src_tokens=src, src_lengths=torch.tensor([src.size(1)]), prev_output_tokens=prev)
    lprobs = model.get_normalized_probs(out, log_probs=True)[0]
    return lprobs.gather(-1, tokens[:, None]).squeeze(-1)


def test_registered_names():
    from fairseq.criterions import CRITERION_REGISTRY

    for name in SEQ_CRITERIA:
        assert name in CRITERION_REGISTRY
        assert CRITERION_REGISTRY[name].__module__ == f"fairseq_dynloss.criterions.{name}"


@pytest.mark.parametrize("include_reference", [False, True])
def test_expected_bleu_equals_formula(toy_data_bin, monkeypatch, include_reference):
    extra = ["--include-reference"] if include_reference else []
    task, model, criterion = build(toy_data_bin / "data-bin", "expected_bleu", "--seq-candidates", "3",
                                   "--seq-alpha", "0.5", "--nll-weight", "0.25", *extra)
    d = task.target_dictionary
    sample = first_batch(task)
    tokens = fixed_candidates(task, sample, 3)
    use_candidates(monkeypatch, tokens)
    loss, sample_size, log = criterion(model, sample)
    loss.backward()
    got_grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()

    expected, expected_bleu_sum = 0.0, 0.0
    for i, ref in enumerate(sample["target"]):
        cands = list(tokens[i]) + ([ref] if include_reference else [])
        scores = torch.stack([token_logprobs_one(model, sample, i, c, d).sum() for c in cands])
        bleus = torch.tensor([sacre_bleu(c, ref, d) for c in cands])
        q = torch.softmax(0.5 * scores, dim=0)
        e_bleu = (q * bleus).sum()
        nll = -token_logprobs_one(model, sample, i, ref, d).sum()
        expected = expected + 0.25 * nll + 0.75 * (-e_bleu / 100)
        expected_bleu_sum += e_bleu.item()
    expected.backward()
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-5)
    for name, p in model.named_parameters():
        if name in got_grads:
            torch.testing.assert_close(got_grads[name], p.grad, rtol=1e-4, atol=1e-6)
    assert sample_size == sample["target"].size(0)
    assert log["expected_bleu"].item() == pytest.approx(expected_bleu_sum, rel=1e-5)
    # Logged BLEU statistics are those of the candidates (never the reference).
    cand_refs = [(tokens[i, k], ref) for i, ref in enumerate(sample["target"]) for k in range(3)]
    corpus = sacrebleu.corpus_bleu([words(c, d) for c, _ in cand_refs], [[words(r, d) for _, r in cand_refs]],
                                   tokenize="none")
    assert log["bleu_sys_len"] == corpus.sys_len and log["bleu_ref_len"] == corpus.ref_len
    assert [log[f"bleu_matches_{i}"] for i in range(4)] == corpus.counts
    assert [log[f"bleu_totals_{i}"] for i in range(4)] == corpus.totals


def test_reduce_metrics_rebuilds_corpus_bleu_over_workers():
    from fairseq.logging import metrics
    from fairseq_dynloss.criterions.expected_bleu import ExpectedBleuCriterion

    hyps, refs = ["1 2 3 4 5", "7 8 9 10"], ["1 2 3 4 6", "7 8 9 11 12"]
    logs = []
    for hyp, ref in zip(hyps, refs):
        stats = sacrebleu.corpus_bleu([hyp], [[ref]], tokenize="none")
        log = {"loss": -0.5, "sample_size": 1, "ntokens": 5, "nsentences": 1, "num_candidates": 1,
               "cand_sentence_bleu": 10.0, "expected_bleu": 20.0,
               "bleu_sys_len": stats.sys_len, "bleu_ref_len": stats.ref_len}
        for i in range(4):
            log[f"bleu_matches_{i}"], log[f"bleu_totals_{i}"] = stats.counts[i], stats.totals[i]
        logs.append(log)
    with metrics.aggregate() as agg:
        ExpectedBleuCriterion.reduce_metrics(logs)
    values = agg.get_smoothed_values()
    assert values["cand_bleu"] == pytest.approx(
        round(sacrebleu.corpus_bleu(hyps, [refs], tokenize="none").score, 2), abs=1e-9)
    assert values["expected_bleu"] == pytest.approx(20.0)
    assert values["loss"] == pytest.approx(-0.5)


def test_beam_candidates_are_fairseq_nbest_and_mode_is_restored(toy_data_bin):
    task, model, criterion = build(toy_data_bin / "data-bin", "expected_bleu", "--seq-candidates", "3",
                                   "--seq-beam")
    sample = first_batch(task)
    model.train()
    cands = candidates_module.generate_candidates(task, model, sample, criterion.cfg)
    assert model.training and all(m.training for m in model.modules())
    assert cands.tokens.shape[:2] == (sample["target"].size(0), 3)
    reference = task.build_generator([model], candidates_module.Namespace(beam=3, nbest=3, max_len_a=1.5, max_len_b=5))
    hypos = reference.generate([model], sample)
    pad = task.target_dictionary.pad()
    for i, nbest in enumerate(hypos):
        for k, hypo in enumerate(nbest):
            row = cands.tokens[i, k]
            assert torch.equal(row[row != pad], hypo["tokens"])


def test_sampled_candidates_respect_max_length(toy_data_bin):
    task, model, criterion = build(toy_data_bin / "data-bin", "expected_bleu", "--seq-candidates", "4",
                                   "--seq-max-len-a", "0", "--seq-max-len-b", "3")
    sample = first_batch(task)
    torch.manual_seed(1)
    cands = candidates_module.generate_candidates(task, model, sample, criterion.cfg)
    lengths = cands.tokens.ne(task.target_dictionary.pad()).sum(-1)
    assert cands.tokens.shape[:2] == (sample["target"].size(0), 4)
    assert int(lengths.max()) <= 4 and int(lengths.min()) >= 1  # b tokens + eos


@pytest.mark.parametrize("criterion, args, message", [
    ("expected_bleu", ["--seq-candidates", "0"], r"--seq-candidates=0; expected an integer >= 1"),
    ("reinforce_bleu", ["--seq-candidates", "-2"], r"--seq-candidates=-2"),
    ("expected_bleu", ["--seq-alpha", "0"], r"--seq-alpha=0.0; expected a finite number > 0"),
    ("expected_bleu", ["--seq-alpha", "-1.5"], r"--seq-alpha=-1.5"),
    ("expected_bleu", ["--bleu-smooth", "laplace"], r"--bleu-smooth='laplace'; expected one of"),
    ("softmax_margin", ["--bleu-smooth", "bogus"], r"--bleu-smooth='bogus'"),
    ("softmax_margin", ["--margin-cost-scale", "0"], r"--margin-cost-scale=0.0"),
    ("expected_bleu", ["--nll-weight", "1.5"], r"--nll-weight=1.5; expected a value in \[0, 1\]"),
    ("reinforce_bleu", ["--reinforce-baseline", "median"], r"--reinforce-baseline='median'"),
    ("reinforce_bleu", ["--reinforce-baseline", "learned"], r"--decoder-state-dim=0"),
    ("reinforce_bleu", ["--seq-beam"], r"REINFORCE needs samples"),
    ("actor_critic_bleu", [], r"--decoder-state-dim=0"),
    ("actor_critic_bleu", ["--decoder-state-dim", "8", "--critic-variance-penalty", "-1"],
     r"--critic-variance-penalty=-1.0"),
])
def test_bad_options_raise_value_error(toy_data_bin, criterion, args, message):
    with pytest.raises(ValueError, match=message):
        build(toy_data_bin / "data-bin", criterion, *args)


def test_wrong_decoder_state_dim_is_reported(toy_data_bin):
    task, model, criterion = build(toy_data_bin / "data-bin", "actor_critic_bleu", "--decoder-state-dim", "8")
    with pytest.raises(ValueError, match=r"--decoder-state-dim=8 but the decoder states have 16"):
        criterion(model, first_batch(task))


def test_expected_bleu_large_alpha_picks_most_probable_candidate(toy_data_bin, monkeypatch):
    task, model, criterion = build(toy_data_bin / "data-bin", "expected_bleu", "--seq-candidates", "3",
                                   "--seq-alpha", "1e4")
    d = task.target_dictionary
    sample = first_batch(task)
    tokens = fixed_candidates(task, sample, 3)
    use_candidates(monkeypatch, tokens)
    _, _, log = criterion(model, sample)
    best = 0.0
    for i, ref in enumerate(sample["target"]):
        scores = [token_logprobs_one(model, sample, i, c, d).sum().item() for c in tokens[i]]
        best += sacre_bleu(tokens[i][max(range(3), key=scores.__getitem__)], ref, d)
    assert log["expected_bleu"].item() == pytest.approx(best, rel=1e-6)
    assert math.isfinite(log["loss"].item())
