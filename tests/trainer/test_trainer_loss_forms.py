"""dynloss-train's loss=dynamic forms and loss=forward_corrected: the scale default, the prob form
against its formula, forward correction as the prob form with Phi = T (bit for bit), bad input."""

import math

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from trainer_helpers import compose_config, is_clock

from fairseq_dynloss.data.label_noise import noise_matrix, write_noise_matrix
from fairseq_dynloss.losses import PhiError
from fairseq_dynloss.trainer import train
from fairseq_dynloss.trainer.registry import ConfigError, build_objective

C = 10
NOISY = ["task.label_noise.kind=pairflip", "task.label_noise.rate=0.4"]


def batch(seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(16, C, generator=generator), torch.randint(0, C, (16,), generator=generator)


def test_paper_form_scale_defaults_to_one_over_sqrt_classes():
    default = build_objective(compose_config("loss=dynamic", "loss.form=paper").loss, C, 8)
    assert default.form == "paper" and default.scale == pytest.approx(1 / math.sqrt(C))
    paper = compose_config("loss=dynamic", "loss.form=paper", "loss.scale=1.0").loss
    assert build_objective(paper, C, 8).scale == 1.0


def test_prob_form_identity_is_cross_entropy_and_refuses_a_scale():
    outputs, target = batch()
    objective = build_objective(compose_config("loss=dynamic", "loss.form=prob").loss, C, 8)
    torch.testing.assert_close(objective(outputs, target), F.cross_entropy(outputs, target))
    # the default form is prob: plain loss=dynamic at its identity Phi is cross-entropy
    default = build_objective(compose_config("loss=dynamic").loss, C, 8)
    torch.testing.assert_close(default(outputs, target), F.cross_entropy(outputs, target))
    with pytest.raises(ConfigError, match="loss.scale=0.5 with loss.form=prob"):
        build_objective(compose_config("loss=dynamic", "loss.form=prob", "loss.scale=0.5").loss, C, 8)
    with pytest.raises(ConfigError, match="unknown loss.form 'logit'"):
        build_objective(compose_config("loss=dynamic", "loss.form=logit").loss, C, 8)


def test_forward_corrected_is_the_prob_form_with_the_task_noise_matrix(tmp_path):
    cfg = compose_config("loss=forward_corrected", *NOISY)
    T = noise_matrix("pairflip", 0.4, C)
    outputs, target = batch(1)
    forward = build_objective(cfg.loss, C, 8, task=cfg.task)
    expected = -torch.log(torch.softmax(outputs.double(), 1) @ T)[torch.arange(16), target].mean()
    torch.testing.assert_close(forward(outputs, target).double(), expected, rtol=1e-6, atol=0)
    path = tmp_path / "T.csv"
    write_noise_matrix(str(path), T)
    fixed = build_objective(compose_config("loss=dynamic", "loss.form=prob", f"loss.phi_init={path}").loss, C, 8)
    assert torch.equal(fixed.phi.matrix, forward.phi.matrix)
    assert torch.equal(fixed(outputs, target), forward(outputs, target))
    clean = compose_config("loss=forward_corrected")
    identity = build_objective(clean.loss, C, 8, task=clean.task)
    torch.testing.assert_close(identity(outputs, target), F.cross_entropy(outputs, target))
    with pytest.raises(ConfigError, match="needs the task config"):
        build_objective(cfg.loss, C, 8)


def test_negative_phi_file_refused_for_the_prob_form(tmp_path):
    path = tmp_path / "bad.csv"
    rows = torch.eye(C)
    rows[0, 1] = -0.1
    path.write_text("\n".join(",".join(str(float(x)) for x in row) for row in rows.tolist()))
    with pytest.raises(PhiError, match="negative entries"):
        build_objective(compose_config("loss=dynamic", "loss.form=prob", f"loss.phi_init={path}").loss, C, 8)
    build_objective(compose_config("loss=dynamic", "loss.form=paper", f"loss.phi_init={path}").loss, C, 8)  # any sign


def test_fixed_phi_t_run_reproduces_forward_correction_run(tmp_path):
    """Same runs, same numbers: a whole training run of each, compared row by row."""
    T = noise_matrix("pairflip", 0.4, C)
    write_noise_matrix(str(tmp_path / "T.csv"), T)
    common = [*NOISY, "task.epochs=2", "device=cpu", "tensorboard=false", "optim.schedule=constant"]
    forward = train(compose_config("loss=forward_corrected", *common), str(tmp_path / "forward"))
    fixed = train(compose_config("loss=dynamic", "loss.form=prob", f"loss.phi_init={tmp_path / 'T.csv'}",
                                 *common), str(tmp_path / "fixed"))
    keys = [k for k in forward[0] if not is_clock(k) and not k.endswith("_s")]
    assert [[row[k] for k in keys] for row in forward] == [[row[k] for k in keys] for row in fixed]
    assert OmegaConf.select(compose_config("loss=forward_corrected"), "loss.name") == "forward_corrected"
