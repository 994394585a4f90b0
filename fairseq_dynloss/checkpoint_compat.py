"""Let fairseq checkpoints load under torch's weights-only ``torch.load`` (torch >= 2.6).

fairseq 0.12 calls ``torch.load`` without ``weights_only``, which defaults to True since torch
2.6, and its checkpoints pickle the model config as an ``argparse.Namespace`` (the legacy
``--arch`` path). Unpickling a Namespace only sets attributes from a dict, so we allow-list that
one class instead of switching the safe loader off (``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``).
Everything else in a fairseq checkpoint (tensors, dicts, lists, numbers, strings) is already
allowed. Called when fairseq imports ``--user-dir fairseq_dynloss``, so ``fairseq-train
--restore-file`` and ``fairseq-generate --user-dir fairseq_dynloss`` work with no environment
variable.
"""

import argparse

import torch

FAIRSEQ_CHECKPOINT_GLOBALS = [argparse.Namespace]


def allow_fairseq_checkpoints() -> None:
    """Add the classes fairseq checkpoints contain to torch's weights-only allow-list."""
    add_safe_globals = getattr(torch.serialization, "add_safe_globals", None)
    if add_safe_globals is not None:  # torch < 2.4 loads with weights_only=False anyway
        add_safe_globals(FAIRSEQ_CHECKPOINT_GLOBALS)
