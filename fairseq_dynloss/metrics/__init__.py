"""Pure-torch sequence metrics: batched sentence BLEU on token ids and expected (smoothed)
metrics for sequence-level training and the L2T-DLF teacher's dev objective (docs/design.md §3.2, 3.5).

Imports only torch; sacrebleu is the reference in tests and benchmarks.
"""

from fairseq_dynloss.metrics.bleu import (
    MAX_NGRAM_ORDER,
    SMOOTH_DEFAULTS,
    BleuStats,
    bleu_from_stats,
    bleu_stats,
    corpus_bleu_from_stats,
    sentence_bleu,
)
from fairseq_dynloss.metrics.candidates import append_reference, sequence_logprobs
from fairseq_dynloss.metrics.classification import aucpr_one_vs_rest, error_rate, expected_accuracy
from fairseq_dynloss.metrics.dev_objective import METRICS, smoothed_dev_metric
from fairseq_dynloss.metrics.expected import (
    candidate_weights,
    expected_bleu,
    expected_token_accuracy,
)
from fairseq_dynloss.metrics.ngram_matches import clipped_ngram_matches
from fairseq_dynloss.metrics.retrieval import RECALL_KS, nearest_neighbours, recall_at_k
from fairseq_dynloss.metrics.tokens import strip_special

__all__ = [
    "METRICS",
    "RECALL_KS",
    "aucpr_one_vs_rest",
    "error_rate",
    "expected_accuracy",
    "nearest_neighbours",
    "recall_at_k",
    "MAX_NGRAM_ORDER",
    "SMOOTH_DEFAULTS",
    "BleuStats",
    "append_reference",
    "bleu_from_stats",
    "bleu_stats",
    "candidate_weights",
    "clipped_ngram_matches",
    "corpus_bleu_from_stats",
    "expected_bleu",
    "expected_token_accuracy",
    "sentence_bleu",
    "sequence_logprobs",
    "smoothed_dev_metric",
    "strip_special",
]
