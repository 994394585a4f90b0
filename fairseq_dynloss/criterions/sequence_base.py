"""The shared shape of the sequence-level criterions: generate -> score with grad -> loss -> log.

A subclass sets which rows it scores (candidates, plus the reference when ``uses_reference``)
and implements ``sequence_loss``; this base class mixes in token NLL, and logs summable
statistics: loss, NLL, the candidates' BLEU sufficient statistics (so ``reduce_metrics``
rebuilds their corpus BLEU, as fairseq's translation task does) and their mean sentence BLEU.
"""

# No "from __future__ import annotations": fairseq reads the dataclass field types at runtime.
import logging
import math
from dataclasses import dataclass, field
from typing import Dict, Tuple

import torch
from fairseq import utils
from fairseq.criterions import FairseqCriterion
from fairseq.logging import metrics

from ..losses.sequence_level import bleu_rewards, mix_with_nll
from ..metrics import MAX_NGRAM_ORDER, BleuStats, append_reference, bleu_stats, corpus_bleu_from_stats
from .candidates import (
    CandidateConfig,
    CandidateScores,
    check_candidate_config,
    check_unit_interval,
    generate_candidates,
    score_candidates,
)

logger = logging.getLogger(__name__)

BLEU_KEYS = (
    [f"bleu_matches_{i}" for i in range(MAX_NGRAM_ORDER)]
    + [f"bleu_totals_{i}" for i in range(MAX_NGRAM_ORDER)]
    + ["bleu_sys_len", "bleu_ref_len"]
)


@dataclass
class SequenceCriterionConfig(CandidateConfig):
    nll_weight: float = field(
        default=0.0,
        metadata={"help": "weight a in [0, 1] of the reference's token NLL: "
                  "loss = a * nll + (1 - a) * sequence_loss, per sentence"},
    )


class SequenceCriterion(FairseqCriterion):
    """Base of ``expected_bleu``, ``reinforce_bleu``, ``actor_critic_bleu``, ``softmax_margin``.

    The loss is summed over sentences and ``sample_size`` is the number of sentences.
    """

    uses_states = False  # subclasses that need decoder states (baselines, critics) set True

    def __init__(self, task, cfg: SequenceCriterionConfig):
        super().__init__(task)
        check_candidate_config(cfg)
        check_unit_interval("--nll-weight", cfg.nll_weight)
        self.cfg = cfg
        self.eos = task.target_dictionary.eos()

    @classmethod
    def build_criterion(cls, cfg, task):
        return cls(task, cfg)

    def load_state_dict(self, state_dict, strict=True):
        """Accept a checkpoint without criterion state (e.g. a cross-entropy model).

        fairseq's trainer loads ``state["criterion"]`` whenever the criterion has parameters (a
        learned baseline or critic head), also for ``--finetune-from-model``; a checkpoint of
        another criterion holds ``None`` there. The heads then keep their fresh initialisation.
        """
        if state_dict is None:
            logger.info("checkpoint has no criterion state: %s starts with freshly initialised heads",
                        type(self).__name__)
            return torch.nn.modules.module._IncompatibleKeys([], [])
        return super().load_state_dict(state_dict, strict=strict)

    def uses_reference(self) -> bool:
        """Whether the reference is scored as the last row (for the NLL term, or the loss)."""
        return self.cfg.nll_weight > 0

    def sequence_loss(self, scores: CandidateScores, rows: torch.Tensor, references: torch.Tensor
                      ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """Per-sentence sequence losses (B,) and extra summable logging values."""
        raise NotImplementedError

    def forward(self, model, sample, reduce=True):
        """Returns ``(loss, sample_size, logging_output)`` as every fairseq criterion."""
        candidates = generate_candidates(self.task, model, sample, self.cfg)
        references = sample["target"]
        rows = candidates.tokens
        if self.uses_reference():
            rows = append_reference(rows, references, self.padding_idx)
        scores = score_candidates(model, sample, rows, self.padding_idx, self.eos,
                                  with_states=self.uses_states)
        seq_loss, extra = self.sequence_loss(scores, rows, references)
        nsentences = references.size(0)
        logging_output = {"ntokens": sample["ntokens"], "nsentences": nsentences,
                          "sample_size": nsentences}
        loss = seq_loss
        if self.uses_reference():
            nll = -scores.token_logprobs[:, -1].sum(dim=-1)
            loss = mix_with_nll(seq_loss, nll, self.cfg.nll_weight)
            logging_output["nll_loss"] = nll.sum().data
        loss = loss.sum() if reduce else loss
        logging_output["loss"] = loss.sum().data
        logging_output.update(self.candidate_logging(candidates.tokens, references))
        logging_output.update({k: v.data if torch.is_tensor(v) else v for k, v in extra.items()})
        return loss, nsentences, logging_output

    def candidate_logging(self, candidates: torch.Tensor, references: torch.Tensor) -> Dict:
        """Summable BLEU statistics (ints) and the summed sentence BLEU of the candidates."""
        batch, n = candidates.shape[:2]
        flat = candidates.reshape(batch * n, -1)
        stats = bleu_stats(flat, references.repeat_interleave(n, dim=0), self.padding_idx, self.eos)
        out = {"num_candidates": batch * n}
        for i in range(MAX_NGRAM_ORDER):
            out[f"bleu_matches_{i}"] = int(stats.matches[:, i].sum())
            out[f"bleu_totals_{i}"] = int(stats.totals[:, i].sum())
        out["bleu_sys_len"] = int(stats.hyp_len.sum())
        out["bleu_ref_len"] = int(stats.ref_len.sum())
        rewards = bleu_rewards(candidates, references, self.padding_idx, self.eos, self.cfg.bleu_smooth)
        out["cand_sentence_bleu"] = float(rewards.sum()) * 100.0
        return out

    @classmethod
    def reduce_metrics(cls, logging_outputs) -> None:
        """Aggregate logging outputs (summed across workers first)."""

        def total(key):
            return utils.item(sum(log.get(key, 0) for log in logging_outputs))

        sample_size = total("sample_size")
        ntokens = total("ntokens")
        metrics.log_scalar("loss", total("loss") / max(sample_size, 1), sample_size, round=4)
        if any("nll_loss" in log for log in logging_outputs):
            metrics.log_scalar("nll_loss", total("nll_loss") / ntokens / math.log(2), ntokens, round=3)
            metrics.log_derived("ppl", lambda meters: utils.get_perplexity(meters["nll_loss"].avg))
        cands = total("num_candidates")
        if cands > 0:
            metrics.log_scalar("cand_sentence_bleu", total("cand_sentence_bleu") / cands, cands, round=2)
        for key in BLEU_KEYS:
            metrics.log_scalar_sum("_" + key, total(key))
        metrics.log_derived("cand_bleu", _corpus_bleu_of_meters)
        for key in cls.mean_per_sentence_keys:
            if any(key in log for log in logging_outputs):
                metrics.log_scalar(key, total(key) / max(sample_size, 1), sample_size, round=4)

    mean_per_sentence_keys: Tuple[str, ...] = ()

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True


def _corpus_bleu_of_meters(meters) -> float:
    """Corpus BLEU of the candidates from the summed statistics (0 before any candidate)."""
    sums = {key: meters["_" + key].sum for key in BLEU_KEYS}
    if sums["bleu_sys_len"] == 0:
        return 0.0
    stats = BleuStats(
        [sums[f"bleu_matches_{i}"] for i in range(MAX_NGRAM_ORDER)],
        [sums[f"bleu_totals_{i}"] for i in range(MAX_NGRAM_ORDER)],
        sums["bleu_sys_len"],
        sums["bleu_ref_len"],
    )
    return round(corpus_bleu_from_stats(stats), 2)
