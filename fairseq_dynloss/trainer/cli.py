"""``dynloss-train``: the Hydra entry point of the generic trainer.

    dynloss-train task=digits model=mlp loss=ce
    dynloss-train task=cifar10 model=resnet20 loss=dynamic loss.form=paper optim.lr=0.1 task.epochs=164
    torchrun --nproc_per_node 2 -m fairseq_dynloss.trainer task=digits model=mlp

Config groups live in ``conf/`` (task, model, loss, optim, teacher, controller); the run folder
(``hydra.run.dir``) receives config.yaml, metrics.csv, checkpoints and plots.
"""

from __future__ import annotations

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from .errors import report_errors
from .loop import train
from .overrides import check_added_keys


@hydra.main(version_base="1.3", config_path="conf", config_name="dynloss_train")
def main(cfg: DictConfig) -> None:
    hydra_cfg = HydraConfig.get()
    out_dir = hydra_cfg.runtime.output_dir
    # A user's mistake (or Ctrl-C) ends with one line and a non-zero exit status (errors.py).
    report_errors(lambda: (check_added_keys(hydra_cfg.overrides.task), train(cfg, out_dir)))


if __name__ == "__main__":
    main()
