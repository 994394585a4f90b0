"""``--criterion expected_bleu``: minimum-risk training with the smoothed expected-BLEU reward.

Per source, n candidates are generated without grad (``candidates.py``), scored with grad by a
teacher-forced pass, and ``loss = -E_q[BLEU] / 100`` with ``q = softmax(alpha * log p(y | x))``
renormalised over the candidates (Shen et al. 2016; docs/design.md §3.2). The maths is
``fairseq_dynloss.metrics.expected_bleu``.
"""

# No "from __future__ import annotations": fairseq reads the dataclass field types at runtime.
from dataclasses import dataclass, field

from fairseq.criterions import register_criterion

from ..metrics import expected_bleu
from .candidates import check_positive
from .sequence_base import SequenceCriterion, SequenceCriterionConfig


@dataclass
class ExpectedBleuConfig(SequenceCriterionConfig):
    seq_alpha: float = field(
        default=1.0,
        metadata={"help": "sharpness alpha > 0 of q = softmax(alpha * log p(y | x)) over the "
                  "candidate set (Shen et al. 2016 use 5e-3 with 100 samples)"},
    )
    include_reference: bool = field(
        default=False, metadata={"help": "add the reference to each candidate set"}
    )


@register_criterion("expected_bleu", dataclass=ExpectedBleuConfig)
class ExpectedBleuCriterion(SequenceCriterion):
    """``-E_q[BLEU] / 100`` per sentence, optionally mixed with the reference's token NLL."""

    mean_per_sentence_keys = ("expected_bleu",)

    def __init__(self, task, cfg: ExpectedBleuConfig):
        super().__init__(task, cfg)
        check_positive("--seq-alpha", cfg.seq_alpha)

    def uses_reference(self) -> bool:
        return self.cfg.include_reference or self.cfg.nll_weight > 0

    def sequence_loss(self, scores, rows, references):
        seq_logprobs = scores.token_logprobs.sum(dim=-1)
        if self.uses_reference() and not self.cfg.include_reference:
            rows, seq_logprobs = rows[:, :-1], seq_logprobs[:, :-1]  # reference: NLL only
        value = expected_bleu(rows, seq_logprobs, references, self.padding_idx,
                              alpha=self.cfg.seq_alpha, eos=self.eos,
                              smooth_method=self.cfg.bleu_smooth)
        return -value / 100.0, {"expected_bleu": value.detach().sum()}
