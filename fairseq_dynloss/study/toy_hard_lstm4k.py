"""The study's ``toy_hard_lstm4k`` part: toy_hard's LSTM student with batches of 4000 tokens.

Why a part of its own: with ``toy_hard_lstm``'s 2000-token batches CE itself falls into the
alignment plateau on some seeds (seed 8 of the table's 1-10; seeds 15 and 18 of 11-20 in a basin
that 2000 more updates do not leave, 19 slowly; docs/investigation.md §4i), so the issues'
criterion "every seed within 2 std of CE's mean" measures this student's basin rate at CE's Phi,
not the loss. Batches of 4000 tokens were chosen on CE's validation loss on seeds 11-20, which
the tables do not use (§4i): every screened seed aligned, the three stalled ones included. The
rows and jobs are ``toy_hard_lstm``'s but label smoothing (``CUT``). Measured with two workers on
this machine (sessions 14-15): a job takes 9-19 minutes (about twice ``toy_hard_lstm``'s), the 42
jobs 471 minutes of job time; the criterion's rows (CE, l2t, ALA) ran first, ``l2t_init`` after.
"""

from __future__ import annotations

from . import toy_hard_lstm, toy_lstm2k, translation

# toy_lstm2k's LSTM arguments with 4000-token batches (the last --max-tokens wins).
ARCH_ARGS = toy_lstm2k.ARCH_ARGS.replace("--max-tokens 2000", "--max-tokens 4000")
# What was cut to fit a session (decided on job times, before the part's table was read;
# two archived scores, CE seed 8 and this row's seed 1, had been seen while checking job times):
# label smoothing, the practitioner's first try, which toy_hard_lstm compares at 2000-token
# batches on the same corpus (there it is the only row that beats CE, +17.21 BLEU). Its seed-1
# run is archived and scored 84.2, above every other row's seed 1 here: the part does not show
# that L2T-DLF or ALA matches it. Kept: the criterion's rows (CE, l2t, ALA) and l2t_init, the
# control that tells what the teacher's training added.
CUT = ("label_smoothing",)
METHODS = tuple(m for m in toy_hard_lstm.METHODS if m not in CUT)
PART = translation.SingleArchPart("toy_hard_lstm4k", "recipes/toy_hard/prepare.sh", "lstm", ARCH_ARGS,
                                  2000, METHODS)
