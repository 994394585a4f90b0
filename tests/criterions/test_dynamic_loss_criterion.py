"""The fairseq adapter: registration, equality with the pure function, batching invariance."""

import math

import pytest
import torch

import fairseq  # noqa: F401  (import before the plugin so it registers with fairseq)
import fairseq_dynloss
from fairseq_dynloss.losses import PhiError, dynamic_loss, save_phi, build_phi

import tiny_fairseq
from tiny_fairseq import first_batch


def build(data_bin, *criterion_args):
    return tiny_fairseq.build(data_bin, "dynamic_loss", *criterion_args)


def test_registered_names():
    from fairseq.criterions import CRITERION_REGISTRY

    assert "dynamic_loss" in CRITERION_REGISTRY
    assert CRITERION_REGISTRY["dynamic_loss"].__module__ == "fairseq_dynloss.criterions.dynamic_loss"


@pytest.mark.parametrize("parametrisation", ["full", "diag_lowrank", "bucketed"])
def test_criterion_equals_pure_function(toy_data_bin, parametrisation):
    task, model, criterion = build(toy_data_bin / "data-bin", "--phi-parametrisation", parametrisation,
                                   "--phi-rank", "4", "--phi-buckets", "4", "--nll-weight", "0.3",
                                   "--label-smoothing", "0.1")
    vocab = len(task.target_dictionary)
    assert criterion.phi.num_classes == vocab
    assert criterion.scale == pytest.approx(1 / math.sqrt(vocab))
    with torch.no_grad():
        for tensor in criterion.phi.tensors().values():
            tensor.add_(0.1 * torch.randn_like(tensor))
    sample = first_batch(task, max_sentences=6)
    loss, sample_size, log = criterion(model, sample)
    lprobs = model.get_normalized_probs(model(**sample["net_input"]), log_probs=True)
    expected = dynamic_loss(lprobs.view(-1, vocab), sample["target"].view(-1), criterion.phi,
                            scale=1 / math.sqrt(vocab), nll_weight=0.3, label_smoothing=0.1,
                            ignore_index=task.target_dictionary.pad())
    torch.testing.assert_close(loss, expected.loss)
    assert sample_size == sample["ntokens"]
    assert log["nll_loss"] == pytest.approx(expected.nll_loss.item(), rel=1e-5)
    assert set(log) >= {"loss", "nll_loss", "dynamic_loss", "phi_diag_mean", "phi_offdiag_absmean"}


def test_batch_equals_sum_of_sentences(toy_data_bin):
    """Padding from batching changes nothing: loss(batch) == sum of per-sentence losses."""
    task, model, criterion = build(toy_data_bin / "data-bin", "--phi-parametrisation", "bucketed")
    sample = first_batch(task, max_sentences=5)
    batch_loss, _, _ = criterion(model, sample)
    total = 0.0
    for i in range(sample["target"].size(0)):
        single = task.dataset("valid").collater([task.dataset("valid")[sample["id"][i].item()]])
        total += criterion(model, single)[0].item()
    assert batch_loss.item() == pytest.approx(total, rel=1e-5)


def test_reduce_metrics_averages_phi_statistics_over_workers():
    from fairseq.logging import metrics
    from fairseq_dynloss.criterions.dynamic_loss import DynamicLossCriterion

    logs = [dict(loss=-2.0, nll_loss=1.0, dynamic_loss=-2.0, sigmoid_saturated=1, ntokens=4,
                 nsentences=1, sample_size=4, phi_calls=1, phi_diag_mean=1.0, phi_offdiag_absmean=0.5)]
    summed = {k: v * 2 for k, v in logs[0].items()}  # two workers, summed before reduce
    with metrics.aggregate() as agg:
        DynamicLossCriterion.reduce_metrics([summed])
    values = agg.get_smoothed_values()
    assert values["phi_diag_mean"] == pytest.approx(1.0)
    assert values["phi_offdiag_absmean"] == pytest.approx(0.5)
    assert values["loss"] == pytest.approx(-2.0 / 4 / math.log(2), abs=1e-3)
    assert values["sigmoid_sat"] == pytest.approx(0.25)


def test_phi_init_file_is_loaded(toy_data_bin, tmp_path):
    vocab = len(open(toy_data_bin / "data-bin/dict.tgt.txt").readlines()) + 4
    phi = build_phi("full", vocab)
    with torch.no_grad():
        phi.matrix.mul_(2.0)
    save_phi(phi, str(tmp_path / "phi.pt"))
    _, _, criterion = build(toy_data_bin / "data-bin", "--phi-parametrisation", "full",
                            "--phi-init", str(tmp_path / "phi.pt"))
    assert torch.equal(criterion.phi.matrix, 2 * torch.eye(vocab))


@pytest.mark.parametrize("args, message", [
    (["--phi-parametrisation", "diag_lowrank", "--phi-rank", "0"], "rank=0"),
    (["--phi-parametrisation", "bucketed", "--phi-buckets", "100000"], "exceeds the vocabulary size"),
    (["--nll-weight", "2"], "--nll-weight=2.0"),
    (["--phi-scale", "-1"], "--phi-scale=-1.0"),
    (["--phi-init", "/nonexistent/phi.pt"], "does not exist"),
])
def test_criterion_errors(toy_data_bin, args, message):
    with pytest.raises(PhiError, match=message):
        build(toy_data_bin / "data-bin", *args)


def write_teacher(path, vocab, parametrisation="diag_lowrank", rank=4, horizon=100):
    from fairseq_dynloss.teacher import build_teacher, save_teacher

    teacher = build_teacher("gated", parametrisation, vocab, rank=rank, init_std=0.5, seed=1)
    save_teacher(teacher, str(path), horizon=horizon)
    return teacher


def vocab_size(data_bin):
    return len((data_bin / "dict.tgt.txt").read_text().splitlines()) + 4


def test_teacher_source_sets_phi_from_the_live_student_state(toy_data_bin, tmp_path):
    from fairseq.logging import metrics
    from fairseq_dynloss.teacher import StudentState

    data = toy_data_bin / "data-bin"
    teacher = write_teacher(tmp_path / "teacher.pt", vocab_size(data))
    task, model, criterion = build(data, "--phi-source", "teacher", "--teacher-path",
                                   str(tmp_path / "teacher.pt"), "--phi-rank", "4", "--lr", "0.002")
    model.train()
    sample = first_batch(task, max_sentences=6)
    metrics.log_scalar("num_updates", 25, weight=0)
    metrics.log_scalar("lr", 0.001, weight=0)
    criterion(model, sample)
    expected = teacher(StudentState(25, 100, lr=0.001, peak_lr=0.002).features(criterion.phi.num_classes))
    for name, value in expected.items():
        torch.testing.assert_close(getattr(criterion.phi, name), value)
    # The next update sees a later progress and the training-loss EMA of the first forward.
    first_loss = criterion.train_loss.value
    assert first_loss is not None
    metrics.log_scalar("num_updates", 26, weight=0)
    criterion(model, sample)
    expected = teacher(StudentState(26, 100, train_loss=first_loss, lr=0.001, peak_lr=0.002)
                       .features(criterion.phi.num_classes))
    for name, value in expected.items():
        torch.testing.assert_close(getattr(criterion.phi, name), value)
    assert criterion.teacher is not None and not list(criterion.parameters())


@pytest.mark.parametrize("make, args, message", [
    (None, ["--phi-source", "teacher"], "needs --teacher-path"),
    (None, ["--phi-source", "teacher", "--teacher-path", "/nonexistent.pt"], "does not exist"),
    ("bucketed", ["--phi-source", "teacher", "--phi-rank", "4"], "built for parametrisation='bucketed'"),
    ("small", ["--phi-source", "teacher", "--phi-rank", "4"], "this student needs"),
    ("rank8", ["--phi-source", "teacher", "--phi-rank", "4"], "rank=8; this student needs 4"),
    ("paper", ["--phi-source", "teacher", "--phi-rank", "4", "--dynamic-form", "prob"],
     "built for the loss form 'paper'; this student uses form 'prob'"),
])
def test_teacher_source_errors(toy_data_bin, tmp_path, make, args, message):
    data = toy_data_bin / "data-bin"
    path = tmp_path / "teacher.pt"
    if make == "bucketed":
        from fairseq_dynloss.teacher import build_teacher, save_teacher
        save_teacher(build_teacher("gated", "bucketed", vocab_size(data), num_buckets=4), str(path))
    elif make == "small":
        write_teacher(path, vocab_size(data) - 1)
    elif make == "rank8":
        write_teacher(path, vocab_size(data), rank=8)
    elif make == "paper":  # a paper-form Phi may be negative: never deployed under the prob form
        write_teacher(path, vocab_size(data))
    if make:
        args = args + ["--teacher-path", str(path)]
    with pytest.raises(PhiError, match=message):
        build(data, *args)
