"""The default run-folder name: ``TASK-MODEL-LOSS[-TEACHER][-CONTROLLER]-seedN``.

The teacher and the controller are part of the name (when not ``none``), so that an L2T or ALA
run never shares a folder with the plain run of the same loss. Registered as the OmegaConf
resolver ``${dynloss_suffix:...}`` used by ``hydra.run.dir`` in ``conf/dynloss_train.yaml``.
"""

from __future__ import annotations

from omegaconf import OmegaConf

RESOLVER = "dynloss_suffix"


def method_suffix(*names: str) -> str:
    """``-name`` for each of ``names`` that is not ``none``: ("l2t", "none") -> "-l2t"."""
    return "".join(f"-{name}" for name in names if str(name) != "none")


if not OmegaConf.has_resolver(RESOLVER):
    OmegaConf.register_new_resolver(RESOLVER, method_suffix)
