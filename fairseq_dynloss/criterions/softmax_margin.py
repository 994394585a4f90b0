"""``--criterion softmax_margin``: cost-augmented sequence-level softmax-margin over candidates.

``loss = -s(y*) + log sum_{y in Y} exp(s(y) + scale * cost(y))`` with s the sequence
log-probability, y* the reference, Y the n candidates plus y*, and ``cost = 1 - BLEU / 100``
(Gimpel & Smith 2010; Edunov et al. 2018). The maths is
``fairseq_dynloss.losses.sequence_level.softmax_margin_loss``.
"""

# No "from __future__ import annotations": fairseq reads the dataclass field types at runtime.
from dataclasses import dataclass, field

from fairseq.criterions import register_criterion

from ..losses.sequence_level import bleu_rewards, softmax_margin_loss
from .candidates import check_positive
from .sequence_base import SequenceCriterion, SequenceCriterionConfig


@dataclass
class SoftmaxMarginConfig(SequenceCriterionConfig):
    margin_cost_scale: float = field(
        default=1.0, metadata={"help": "scale > 0 of the cost 1 - BLEU/100 inside the softmax"}
    )


@register_criterion("softmax_margin", dataclass=SoftmaxMarginConfig)
class SoftmaxMarginCriterion(SequenceCriterion):
    """Softmax-margin with cost 1 - sentence BLEU / 100; the reference is y*."""

    mean_per_sentence_keys = ("margin_cost",)

    def __init__(self, task, cfg: SoftmaxMarginConfig):
        super().__init__(task, cfg)
        check_positive("--margin-cost-scale", cfg.margin_cost_scale)

    def uses_reference(self) -> bool:
        return True

    def sequence_loss(self, scores, rows, references):
        costs = 1.0 - bleu_rewards(rows, references, self.padding_idx, self.eos, self.cfg.bleu_smooth)
        loss = softmax_margin_loss(scores.token_logprobs.sum(dim=-1), costs, target_index=-1,
                                   cost_scale=self.cfg.margin_cost_scale)
        return loss, {"margin_cost": costs[:, :-1].mean(dim=-1).sum()}
