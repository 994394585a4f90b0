"""``dynloss-train``: the Hydra entry point of the generic trainer.

    dynloss-train task=digits model=mlp loss=ce
    dynloss-train task=cifar10 model=resnet20 loss=dynamic optim.lr=0.1 task.epochs=164
    torchrun --nproc_per_node 2 -m fairseq_dynloss.trainer task=digits model=mlp

Config groups live in ``conf/`` (task, model, loss, optim, teacher, controller); the run folder
(``hydra.run.dir``) receives config.yaml, metrics.csv, checkpoints and plots.
"""

from __future__ import annotations

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from .loop import train


@hydra.main(version_base="1.3", config_path="conf", config_name="dynloss_train")
def main(cfg: DictConfig) -> None:
    out_dir = HydraConfig.get().runtime.output_dir
    train(cfg, out_dir)


if __name__ == "__main__":
    main()
