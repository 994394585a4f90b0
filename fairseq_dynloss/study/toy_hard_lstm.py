"""The study's ``toy_hard_lstm`` part: the hard corpus's LSTM student (issue 16's "both corpora,
transformer and LSTM").

The toy_hard part judges the transformer only: the LSTM was cut to fit its budget. Here the LSTM
runs with ``toy_lstm2k``'s settings (2000-token batches, where CE aligns on every toy seed),
which on this corpus reach validation loss 0.375-0.58 with CE on seeds 11-13 (screened in
session 11; the tables use seeds 1-10), against 0.99 for the toy_hard transformer. A run costs
about 6-7 minutes on this machine, so a part that fits 150 minutes on 2 cores has five rows:
CE, label smoothing (the practitioner's first try), ALA and L2T-DLF in the prob form, and
``l2t_init`` (L2T-DLF's teacher untrained), the control that separates what the teacher learned
from what its starting point does. **Cut:** the fine-tuned sequence-level rows, the paper-form
rows and ``dynamic_fixed`` (CE bit for bit on every toy run).
"""

from __future__ import annotations

from . import toy_lstm2k, translation

METHODS = ("ce", "label_smoothing", "l2t_init", "l2t", "ala")
PART = translation.SingleArchPart("toy_hard_lstm", "recipes/toy_hard/prepare.sh", "lstm", toy_lstm2k.ARCH_ARGS,
                                  2000, METHODS)
