"""Generic (non-fairseq) trainer for image classification and metric learning (``dynloss-train``).

Reuses the pure-torch losses and metrics of the package; never imports fairseq.
"""

from . import run_name  # noqa: F401  (registers the run-folder resolver of conf/dynloss_train.yaml)
from .loop import Student, evaluate, train

__all__ = ["Student", "evaluate", "train"]
