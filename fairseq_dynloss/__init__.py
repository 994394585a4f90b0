"""fairseq-dynloss: learned (L2T-DLF) and adaptive (ALA) loss functions for fairseq.

``--user-dir fairseq_dynloss`` imports this package after fairseq; fairseq itself only
auto-imports the ``tasks/`` and ``models/`` folders of a user dir, so the criterions are
registered here. Without fairseq loaded (pure-torch use: ``losses``, ``hypergrad``, the generic
trainer), importing the package stays light; call ``register_with_fairseq()`` to register the
fairseq components explicitly.
"""

import sys

__version__ = "0.1.0"


def register_with_fairseq() -> None:
    """Register criterions and tasks with fairseq, allow-list its checkpoint contents, make its
    checkpoint copies kill-safe and its resume exact across epochs (``tasks/exact_resume.py``)."""
    from . import checkpoint_compat
    from .tasks import exact_resume

    checkpoint_compat.allow_fairseq_checkpoints()
    checkpoint_compat.make_checkpoint_writes_atomic()
    exact_resume.install()
    from . import criterions  # noqa: F401
    from . import tasks  # noqa: F401


if "fairseq" in sys.modules:
    register_with_fairseq()
