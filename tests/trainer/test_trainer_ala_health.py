"""dynloss-train warns once when every ALA-controlled Phi entry sits at the clamp, and draws
ala.png from ala_log.csv."""

import logging

from trainer_helpers import compose_config

from fairseq_dynloss.trainer import train


def test_a_zero_width_clamp_pins_every_entry_and_is_reported_once(tmp_path, caplog):
    # clamp [0, 0]: no entry may move from its start, so all sit at both bounds after window 1.
    cfg = compose_config("loss=dynamic", "loss.form=paper", "loss.nll_weight=0.5", "controller=ala", "controller.window=5",
                         "controller.clamp=[0.0,0.0]", "controller.val_subset=100", "task.epochs=2",
                         "plot_every=1")
    with caplog.at_level(logging.WARNING, logger="dynloss-train"):
        train(cfg, str(tmp_path))
    pinned = [r.getMessage() for r in caplog.records if "sit at the clamp" in r.getMessage()]
    assert len(pinned) == 1, pinned
    assert "all 90 controlled entries sit at the clamp [0.0, 0.0]" in pinned[0]  # 10 x 10 - diagonal
    assert (tmp_path / "ala.png").stat().st_size > 0


def test_a_free_clamp_gives_no_clamp_warning(tmp_path, caplog):
    cfg = compose_config("loss=dynamic", "loss.form=paper", "loss.nll_weight=0.5", "controller=ala", "controller.window=5",
                         "controller.val_subset=100", "task.epochs=1")
    with caplog.at_level(logging.WARNING, logger="dynloss-train"):
        train(cfg, str(tmp_path))
    assert not [r for r in caplog.records if "sit at the clamp" in r.getMessage()]
