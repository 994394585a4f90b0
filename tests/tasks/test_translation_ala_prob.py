"""--task translation_ala with --dynamic-form prob, in process: the controller moves the logits of
B = exp(L), so Phi stays finite and non-negative; the loss starts at cross-entropy; the options
that belong to the other form fail clearly."""

import math
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "criterions"))
import tiny_fairseq  # noqa: E402

from fairseq_dynloss.controllers import ControllerError  # noqa: E402
from fairseq_dynloss.losses import check_prob_tensors  # noqa: E402

PROB = ("--task", "translation_ala", "--phi-source", "ala", "--phi-parametrisation", "bucketed",
        "--phi-buckets", "4", "--max-update", "100", "--dynamic-form", "prob", "--ala-reward", "loss",
        "--ala-val-batches", "1", "--ala-val-max-sentences", "8")


def build(data_bin, *extra):
    return tiny_fairseq.build(data_bin, "dynamic_loss", *PROB, *extra)


def test_windows_move_the_logits_and_b_stays_in_its_box(toy_data_bin, tmp_path):
    """beta = 40 / sqrt(16) = 10 per window: every action hits the box [-9.2, 0] at once, so B is
    exactly 1 or e^-9.2 wherever an action was taken; the criterion's loss stays finite."""
    task, model, criterion = build(toy_data_bin / "data-bin", "--ala-interval", "1", "--ala-beta", "40",
                                   "--save-dir", str(tmp_path))
    phi = criterion.phi
    torch.testing.assert_close(phi.B, torch.full((4, 4), math.exp(-9.2)))
    assert torch.equal(phi.diag, torch.ones_like(phi.diag))  # d is --phi-init's
    batch = tiny_fairseq.first_batch(task)
    for update in range(1, 6):
        row = task.after_update(model, update)
        logits = task.controller.target.values()
        assert ((logits == -9.2) | (logits == 0.0)).all()
        torch.testing.assert_close(phi.B, torch.exp(logits).float())
        assert row["W_max"] == pytest.approx(phi.B.max().item())
        check_prob_tensors(phi)  # finite, >= 0, no zero column
        loss, _, log = criterion(model, batch)
        assert torch.isfinite(loss)
    assert (task.controller.target.values() == 0.0).any(), "some entry reached B = 1"


def test_the_loss_starts_at_cross_entropy(toy_data_bin):
    """With B = e^-9.2 the prob loss is NLL minus at most e^-9.2 X / p_y per token
    (controllers/targets.py); on the untrained tiny model the gap is below 1e-3 nats per token."""
    task, model, criterion = build(toy_data_bin / "data-bin")
    batch = tiny_fairseq.first_batch(task)
    with torch.no_grad():
        _, _, log = criterion(model, batch)
    tokens = float(log["ntokens"])
    nll, dynamic = float(log["nll_loss"]) / tokens, float(log["dynamic_loss"]) / tokens
    assert 0.0 <= nll - dynamic < 1e-3


@pytest.mark.parametrize("extra, message", [
    (["--ala-clamp", "0.1"], r"--ala-clamp=0.1 bounds W = \|h\| B under --dynamic-form paper; under "
                             r"--dynamic-form prob the controlled logits stay in \[--ala-logit-init, "
                             r"--ala-logit-max\] \(now \[-9.2, 0.0\]\)"),
    (["--ala-logit-init", "0"], r"--ala-logit-init/--ala-logit-max: logit_init=0.0, logit_max=0.0; expected "
                                r"finite numbers with logit_init < logit_max <= 0"),
    (["--ala-logit-max", "1"], r"logit_init=-9.2, logit_max=1.0"),
])
def test_bad_options_fail_clearly(toy_data_bin, extra, message):
    with pytest.raises(ControllerError, match=message):
        build(toy_data_bin / "data-bin", *extra)


def test_paper_form_keeps_its_clamp_default(toy_data_bin):
    task, _, _ = build(toy_data_bin / "data-bin", "--dynamic-form", "paper")
    target = task.controller.target
    assert target.form == "paper" and target.clamp == (-0.1, 0.1)
