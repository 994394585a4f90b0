"""The study's ``toy_hard`` part: every translation loss on the hard synthetic corpus, paired seeds.

The toy corpus is at its ceiling (transformer CE ~89 BLEU); the hard corpus
(``fairseq_dynloss/data/toy_hard_corpus.py``, ``recipes/toy_hard/``) leaves the toy transformer
far from it after the same few minutes of CPU, so a loss has room to help and every row is a
paired comparison with CE over the same seeds. The jobs and the table are the toy part's
(``study/translation.py``), on this corpus, with the transformer only and these sizes.
"""

from __future__ import annotations

from typing import Dict, List

from . import translation
from .jobs import Job

ARCH = "transformer"  # the toy transformer of recipes/toy/common.sh
# Budget: the whole part (every row x 10 seeds, two single-threaded jobs at a time) must fit in
# 150 minutes on 2 cores. 1000 updates (the recipe: 1200, 47.5 BLEU) put CE near 40 BLEU.
# Measured (session 10): 123 jobs, 202 min of job time, ~100 min of wall time with two workers
# (session 7's ~5 h came from ALA's per-update BLEU reward, now measured at the window end).
UPDATES = 1000
SEQ_UPDATES = 50
TEACHER_STEPS = 60
METHODS = list(translation.METHODS)


def jobs(args, work: str, repo: str, env: Dict[str, str]) -> List[Job]:
    """Every job of the part (``translation.jobs``) from the study's arguments
    (``toy_hard_methods``, ``toy_hard_seed_list``, ``toy_hard_updates``,
    ``toy_hard_seq_updates``, ``toy_hard_teacher_steps``); it writes ``<work>/toy_hard/``."""
    return translation.jobs("toy_hard", work, repo, env, "recipes/toy_hard/prepare.sh",
                            {ARCH: ("", args.toy_hard_updates)}, args.toy_hard_methods,
                            args.toy_hard_seed_list, args.toy_hard_seq_updates,
                            args.toy_hard_teacher_steps)


def tables(args, work: str) -> List[str]:
    """One paired table: sacrebleu BLEU on test, per seed, vs CE (``translation.TIME_NOTE``)."""
    return [translation.table("toy_hard", work, ARCH, args.toy_hard_updates,
                              args.toy_hard_methods, args.toy_hard_seed_list,
                              args.toy_hard_seq_updates)]
