"""dynloss-train refuses bad values before training, naming the option (issue 17, item 7); the
run folder stays empty."""

import pytest
from trainer_helpers import compose_config

from fairseq_dynloss.trainer import train
from fairseq_dynloss.trainer.registry import ConfigError
from fairseq_dynloss.trainer.run_dir import LOCK_FILE

L2T = ["loss=dynamic", "loss.form=paper", "teacher=l2t"]
ALA = ["loss=dynamic", "loss.form=paper", "loss.parametrisation=bucketed", "controller=ala"]


@pytest.mark.parametrize("overrides, named", [
    (["loss=dynamic", "loss.form=paper", "loss.scale=-1"], "loss.scale=-1"),      # trained to 100 % error
    (["loss=dynamic", "loss.form=paper", "loss.scale=nan"], "loss.scale=nan"),
    (["optim.lr=0"], "optim.lr=0"),
    (["optim.lr=inf"], "optim.lr=inf"),
    (["task.epochs=0"], "task.epochs=0"),                       # exited 0 with nothing trained
    (["task.epochs=-3"], "task.epochs=-3"),
    (["task.batch_size=0"], "task.batch_size=0"),
    (["task.val_size=-1"], "task.val_size=-1"),
    (["eval_batch_size=0"], "eval_batch_size=0"),
    (["optim.milestones=[0.5,1.5]"], "optim.milestones=[0.5, 1.5]"),
    (["optim.gamma=nan"], "optim.gamma=nan"),
    (["optim.momentum=-0.1"], "optim.momentum=-0.1"),
    ([*ALA, "controller.replay_batch=0"], "controller.replay_batch=0"),
    ([*ALA, "controller.window=0"], "controller.window=0"),
    ([*L2T, "teacher.lr=inf"], "teacher.lr=inf"),              # saved an all-non-finite teacher
    ([*L2T, "teacher.inner_lr=nan"], "teacher.inner_lr=nan"),  # every step skipped, rc 0
    ([*L2T, "teacher.clip=-1"], "teacher.clip=-1"),            # silently no clipping
])
def test_a_bad_value_is_refused_naming_it_before_anything_is_written(tmp_path, overrides, named):
    with pytest.raises(ConfigError) as error:
        train(compose_config(*overrides), str(tmp_path / "run"))
    assert str(error.value).startswith(named + ";"), str(error.value)
    assert "expected" in str(error.value)
    written = [p.name for p in (tmp_path / "run").iterdir()] if (tmp_path / "run").exists() else []
    assert written in ([], [LOCK_FILE])


def test_the_default_configs_pass():
    from fairseq_dynloss.trainer.validate import check_config_values

    for overrides in ([], L2T, ALA, ["task=cifar10", "model=resnet20", "optim=adam"]):
        check_config_values(compose_config(*overrides))
