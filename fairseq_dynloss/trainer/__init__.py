"""Generic (non-fairseq) trainer for image classification and metric learning (``dynloss-train``).

Reuses the pure-torch losses and metrics of the package; never imports fairseq.
"""

from .loop import Student, evaluate, train

__all__ = ["Student", "evaluate", "train"]
