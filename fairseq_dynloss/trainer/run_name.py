"""The default run-folder name: ``TASK-MODEL-LOSS[-TEACHER][-CONTROLLER[-multi]]-seedN``.

The teacher and the controller are part of the name (when not ``none``), so that an L2T or ALA
run never shares a folder with the plain run of the same loss. Registered as the OmegaConf
resolver ``${dynloss_suffix:...}`` used by ``hydra.run.dir`` in ``conf/dynloss_train.yaml``.
"""

from __future__ import annotations

from omegaconf import OmegaConf

RESOLVER = "dynloss_suffix"


def method_suffix(teacher: str, controller: str, multi_network=False) -> str:
    """``-teacher`` and ``-controller`` when not ``none``, and ``-multi`` for multi-network ALA
    (its children live in ``child<r>/`` of the folder): ("l2t", "none") -> "-l2t",
    ("none", "ala", True) -> "-ala-multi"."""
    suffix = "".join(f"-{name}" for name in (teacher, controller) if str(name) != "none")
    return suffix + ("-multi" if str(multi_network).lower() == "true" else "")


if not OmegaConf.has_resolver(RESOLVER):
    OmegaConf.register_new_resolver(RESOLVER, method_suffix)
