"""translation_l2t --teacher-dev-objective nll|token_accuracy|expected_bleu: each equals a naive
per-sentence computation, its hypergradient matches finite differences, bad values are refused;
the dev batches are a seeded random subset of the validation split, not its shortest sentences."""

import math

import pytest
import sacrebleu
import torch

from fairseq_dynloss.hypergrad import FunctionalModule
from fairseq_dynloss.losses import PhiError
from fairseq_dynloss.tasks.l2t_dev_objective import check_dev_objective
from l2t_hypergrad import l2t_hypergradient
from l2t_task_setup import build, parse, train_batches

CPU = torch.device("cpu")
PHI = ("--phi-parametrisation", "bucketed", "--phi-buckets", "4")


def single(task, split, index):
    """Batch of one sentence of ``split`` (no padding)."""
    dataset = task.dataset(split)
    return dataset.collater([dataset[index]])


def lprobs_of(model, src, prev):
    """(L, V) teacher-forced log-probabilities for one source and decoder input."""
    out = model(src_tokens=src.view(1, -1), src_lengths=torch.tensor([src.numel()]),
                prev_output_tokens=prev.view(1, -1))
    return model.get_normalized_probs(out, log_probs=True)[0]


def task_objective(task, model):
    """The task's dev objective at the model's own weights (one stream)."""
    student = FunctionalModule(model)
    names = [n for n, _ in model.named_parameters()]
    objective = task._dev_objective(student, model, names, 1)
    params = task._stack_streams({n: p.detach() for n, p in model.named_parameters()}, 1)
    return objective, params


def test_dev_batches_are_a_seeded_random_subset(toy_data_bin):
    task, model, _, _ = build(toy_data_bin / "data-bin", *PHI)
    samples = task._load_dev_samples(CPU)
    dataset = task.dataset("valid")
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(5)).tolist()
    chosen = sorted(i for s in samples for i in s["id"].tolist())
    assert chosen == sorted(order[:8])
    shortest = sorted(sorted(range(len(dataset)), key=lambda i: (dataset.num_tokens(i), i))[:8])
    assert chosen != shortest
    lengths = [[dataset.num_tokens(i) for i in s["id"].tolist()] for s in samples]
    assert max(lengths[0]) <= min(lengths[1])  # batched by length


@pytest.mark.parametrize("kind", ["nll", "token_accuracy"])
def test_teacher_forced_objectives_equal_naive_computation(toy_data_bin, kind):
    task, model, _, _ = build(toy_data_bin / "data-bin", *PHI, "--teacher-dev-objective", kind)
    task.dev_samples = task._load_dev_samples(CPU)
    objective, params = task_objective(task, model)
    value = float(objective(params))
    model.eval()
    eos = task.tgt_dict.eos()
    per_batch = []
    with torch.no_grad():
        for sample in task.dev_samples:
            total, count = 0.0, 0
            for i in sample["id"].tolist():
                one = single(task, "valid", i)
                target = one["target"][0]
                prev = torch.cat([torch.tensor([eos]), target[:-1]])
                lp = lprobs_of(model, one["net_input"]["src_tokens"][0], prev)
                for t, y in enumerate(target.tolist()):
                    total += -lp[t, y].item() if kind == "nll" else math.exp(lp[t, y].item())
                    count += 1
            per_batch.append(-total / count if kind == "nll" else total / count)
    assert value == pytest.approx(sum(per_batch) / len(per_batch), rel=1e-5, abs=1e-6)


def test_expected_bleu_equals_naive_computation(toy_data_bin):
    alpha = 0.7
    task, model, _, _ = build(toy_data_bin / "data-bin", *PHI, "--teacher-dev-objective", "expected_bleu",
                              "--teacher-bleu-candidates", "3", "--teacher-bleu-alpha", alpha,
                              "--teacher-bleu-include-reference")
    task.dev_samples = task._load_dev_samples(CPU)
    objective, params = task_objective(task, model)
    value = float(objective(params))
    # The same candidates: drawn from the same weights with the same seed.
    candidates = task._candidates(model, {n: p.detach() for n, p in model.named_parameters()})
    model.eval()
    pad, eos = task.tgt_dict.pad(), task.tgt_dict.eos()
    words = lambda ids: " ".join(str(t) for t in ids if t not in (pad, eos))
    per_batch = []
    with torch.no_grad():
        for sample, cands in zip(task.dev_samples, candidates):
            assert cands.shape[:2] == (sample["target"].size(0), 3)
            scores = []
            for b, i in enumerate(sample["id"].tolist()):
                one = single(task, "valid", i)
                ref = one["target"][0]
                rows = [c[c != pad] for c in cands[b]] + [ref]  # + the reference
                logps, bleus = [], []
                for cand in rows:
                    prev = torch.cat([torch.tensor([eos]), cand[:-1]])
                    lp = lprobs_of(model, one["net_input"]["src_tokens"][0], prev)
                    logps.append(sum(lp[t, y].item() for t, y in enumerate(cand.tolist())))
                    bleus.append(sacrebleu.sentence_bleu(words(cand.tolist()), [words(ref.tolist())],
                                                         tokenize="none", smooth_method="exp").score)
                weights = torch.softmax(alpha * torch.tensor(logps, dtype=torch.float64), 0)
                scores.append(float((weights * torch.tensor(bleus, dtype=torch.float64)).sum()))
            per_batch.append(sum(scores) / len(scores) / 100)
    assert value == pytest.approx(sum(per_batch) / len(per_batch), rel=1e-4)
    assert value > 0  # the reference is a candidate


@pytest.mark.parametrize("kind", ["nll", "token_accuracy", "expected_bleu"])
def test_hypergradient_matches_finite_difference(toy_data_bin, kind, monkeypatch):
    """d objective(omega_T(theta)) / d theta along the hypergradient's own direction, against a
    central difference of the unrolled objective (fairseq computes log-softmax in float32: ~1 %)."""
    task, model, _, _ = build(toy_data_bin / "data-bin", *PHI, "--teacher-dev-objective", kind,
                              "--teacher-bleu-include-reference")
    if kind == "expected_bleu":  # the candidates are constants of the objective: keep them fixed
        fixed = {}
        original = task._candidates
        monkeypatch.setattr(task, "_candidates", lambda m, p: fixed.setdefault("c", original(m, p)))
    batches = train_batches(task, 2)
    features = torch.tensor([[0.0, 1.0, 1.0, 0.0, 1.0, 1.0], [0.5, 0.9, 0.9, 0.1, 1.0, 1.0]])
    model.train()
    result = l2t_hypergradient(task, model, batches, features, lr=0.1)
    assert result.finite
    direction = {n: g / math.sqrt(sum(float((h ** 2).sum()) for h in result.grads.values()))
                 for n, g in result.grads.items()}
    slope = sum(float((result.grads[n] * direction[n]).sum()) for n in direction)  # = |grad|
    assert slope > 0
    theta = {n: p.detach() for n, p in task.learner.teacher.named_parameters()}
    # The teacher's gates are strongly curved: eps = 1e-2 is 8 % off for nll, 1e-3 within 0.6 %.
    eps, values = 1e-3, []
    for sign in (1, -1):
        moved = {n: theta[n] + sign * eps * direction[n] for n in theta}
        values.append(float(l2t_hypergradient(task, model, batches, features, theta=moved, lr=0.1).outer_loss))
    assert (values[0] - values[1]) / (2 * eps) == pytest.approx(slope, rel=0.02)


def test_bad_dev_objective_is_refused(toy_data_bin, capsys):
    with pytest.raises(SystemExit):
        parse(toy_data_bin / "data-bin", *PHI, "--teacher-dev-objective", "bleu")
    assert "invalid choice: 'bleu'" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"--teacher-dev-objective='bleu'; expected one of \['nll', "):
        check_dev_objective("bleu")
    with pytest.raises(PhiError, match="--teacher-bleu-alpha=0.0; expected a finite number > 0"):
        build(toy_data_bin / "data-bin", *PHI, "--teacher-bleu-alpha", "0")
    with pytest.raises(PhiError, match="--teacher-bleu-candidates=0; expected >= 1"):
        build(toy_data_bin / "data-bin", *PHI, "--teacher-bleu-candidates", "0")
