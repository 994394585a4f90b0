"""--dynamic-form prob in the fairseq criterion: CE at Phi = I, forward correction with a CSV noise
matrix, the Phi-term gradient statistics in the (summable) logs, and refused options."""

import math

import pytest
import torch

import fairseq  # noqa: F401  (import before the plugin so it registers with fairseq)
import fairseq_dynloss  # noqa: F401
from fairseq_dynloss.losses import PhiError, dynamic_loss

import tiny_fairseq
from tiny_fairseq import first_batch


def build(data_bin, *criterion_args):
    return tiny_fairseq.build(data_bin, "dynamic_loss", *criterion_args)


def vocab_size(data_bin):
    return len((data_bin / "dict.tgt.txt").read_text().splitlines()) + 4


def lprobs_and_target(task, model, sample):
    lprobs = model.get_normalized_probs(model(**sample["net_input"]), log_probs=True)
    return lprobs.view(-1, lprobs.size(-1)), sample["target"].view(-1)


@pytest.mark.parametrize("parametrisation", ["full", "diag_lowrank", "bucketed"])
def test_identity_prob_form_is_token_cross_entropy(toy_data_bin, parametrisation):
    task, model, criterion = build(toy_data_bin / "data-bin", "--dynamic-form", "prob",
                                   "--phi-parametrisation", parametrisation, "--phi-rank", "4")
    assert criterion.scale == 1.0
    sample = first_batch(task, max_sentences=6)
    loss, _, log = criterion(model, sample)
    lprobs, target = lprobs_and_target(task, model, sample)
    nll = torch.nn.functional.nll_loss(lprobs, target, ignore_index=task.target_dictionary.pad(),
                                       reduction="sum")
    torch.testing.assert_close(loss, nll)
    # Measured on the first call: at Phi = I the Phi term is cross-entropy itself.
    assert log["phi_grad_ratio"].item() == pytest.approx(log["phi_grad_tokens"].item(), rel=1e-4)


def test_csv_noise_matrix_gives_forward_correction(toy_data_bin, tmp_path):
    data = toy_data_bin / "data-bin"
    vocab = vocab_size(data)
    eye = torch.eye(vocab, dtype=torch.float64)
    T = 0.7 * eye + 0.3 * torch.roll(eye, 1, dims=1)
    (tmp_path / "T.csv").write_text("\n".join(",".join(repr(x) for x in row) for row in T.tolist()))
    task, model, criterion = build(data, "--dynamic-form", "prob", "--phi-parametrisation", "full",
                                   "--phi-init", str(tmp_path / "T.csv"), "--nll-weight", "0.2",
                                   "--label-smoothing", "0.1")
    sample = first_batch(task, max_sentences=6)
    loss, _, _ = criterion(model, sample)
    lprobs, target = lprobs_and_target(task, model, sample)
    pad = task.target_dictionary.pad()
    keep = target.ne(pad)
    forward = -torch.log(lprobs.exp().double() @ T)[torch.arange(target.numel()), target][keep].sum()
    expected = dynamic_loss(lprobs, target, criterion.phi, nll_weight=0.2, label_smoothing=0.1,
                            ignore_index=pad, form="prob")
    torch.testing.assert_close(loss, expected.loss)
    torch.testing.assert_close(expected.dynamic.double(), forward, rtol=1e-5, atol=0)


def test_gradient_statistics_are_summable_over_workers():
    from fairseq.logging import metrics
    from fairseq_dynloss.criterions.dynamic_loss import DynamicLossCriterion

    one = dict(loss=2.0, nll_loss=1.0, dynamic_loss=2.0, sigmoid_saturated=0, ntokens=4,
               nsentences=1, sample_size=4, phi_calls=1, phi_diag_mean=1.0, phi_offdiag_absmean=0.0,
               phi_grad_share=3.0, phi_grad_ratio=2.0, phi_grad_tokens=4)
    unmeasured = {k: v for k, v in one.items() if not k.startswith("phi_grad")}
    with metrics.aggregate() as agg:
        DynamicLossCriterion.reduce_metrics([one, unmeasured])
    values = agg.get_smoothed_values()
    assert values["phi_grad_share"] == pytest.approx(0.75)
    assert values["phi_grad_ratio"] == pytest.approx(0.5)


def test_measurement_interval(toy_data_bin):
    task, model, criterion = build(toy_data_bin / "data-bin", "--phi-grad-interval", "2")
    sample = first_batch(task)
    logs = [criterion(model, sample)[2] for _ in range(3)]
    assert ["phi_grad_share" in log for log in logs] == [True, False, True]
    _, _, never = build(toy_data_bin / "data-bin", "--phi-grad-interval", "0")
    assert "phi_grad_share" not in never(model, sample)[2]


def test_prob_form_refusals(toy_data_bin, tmp_path):
    data = toy_data_bin / "data-bin"
    with pytest.raises(PhiError, match="--phi-scale=0.5 with --dynamic-form prob"):
        build(data, "--dynamic-form", "prob", "--phi-scale", "0.5")
    vocab = vocab_size(data)
    rows = torch.eye(vocab)
    rows[3, 4] = -0.2
    (tmp_path / "bad.csv").write_text("\n".join(",".join(str(x) for x in row) for row in rows.tolist()))
    with pytest.raises(PhiError, match="bad.csv.*1 negative entries"):
        build(data, "--dynamic-form", "prob", "--phi-parametrisation", "full",
              "--phi-init", str(tmp_path / "bad.csv"))
    with pytest.raises(PhiError, match="--phi-grad-interval=-1"):
        build(data, "--phi-grad-interval", "-1")
    assert math.isfinite(build(data, "--phi-parametrisation", "full",
                               "--phi-init", str(tmp_path / "bad.csv"))[2].scale)  # paper: any sign
