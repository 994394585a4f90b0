"""``--criterion reinforce_bleu``: REINFORCE with a sentence-BLEU reward (Ranzato et al. 2016).

Per source, n sequences are sampled; each gets the reward r = sentence BLEU / 100 and the
policy-gradient surrogate ``-sum_t (r - b_t) log p(y_t | y_<t, x)``. The baseline b is the
batch's mean reward (``average``) or a linear function of the decoder state (``learned``,
trained by squared error to the reward; its parameters live in this criterion, so fairseq's
trainer optimises them with the model's). The maths is ``losses/sequence_level.py``.
"""

# No "from __future__ import annotations": fairseq reads the dataclass field types at runtime.
from dataclasses import dataclass, field

import torch
from fairseq.criterions import register_criterion

from ..losses.sequence_level import (
    baseline_regression_loss,
    batch_average_baseline,
    bleu_rewards,
    reinforce_loss,
)
from .candidates import check_positive
from .sequence_base import SequenceCriterion, SequenceCriterionConfig
from .state_heads import build_state_head, check_state_dim

BASELINES = ("average", "learned")


@dataclass
class ReinforceBleuConfig(SequenceCriterionConfig):
    reinforce_baseline: str = field(
        default="average",
        metadata={"help": "reward baseline: average (batch mean reward) or learned (linear on "
                  "the detached decoder state, per token; needs --decoder-state-dim)"},
    )
    decoder_state_dim: int = field(
        default=0,
        metadata={"help": "size of the decoder states feeding the output projection (the "
                  "transformer's --decoder-output-dim / --decoder-embed-dim, the LSTM's "
                  "--decoder-out-embed-dim); needed by the learned baseline"},
    )
    baseline_loss_weight: float = field(
        default=1.0, metadata={"help": "weight > 0 of the learned baseline's squared error"}
    )


@register_criterion("reinforce_bleu", dataclass=ReinforceBleuConfig)
class ReinforceBleuCriterion(SequenceCriterion):
    """REINFORCE over n samples per source, averaged over the samples."""

    mean_per_sentence_keys = ("reward", "baseline_mse")

    def __init__(self, task, cfg: ReinforceBleuConfig):
        super().__init__(task, cfg)
        if cfg.reinforce_baseline not in BASELINES:
            raise ValueError(
                f"--reinforce-baseline={cfg.reinforce_baseline!r}; expected one of {list(BASELINES)}"
            )
        if cfg.seq_beam:
            raise ValueError("--seq-beam with reinforce_bleu; REINFORCE needs samples")
        check_positive("--baseline-loss-weight", cfg.baseline_loss_weight)
        self.baseline = None
        if cfg.reinforce_baseline == "learned":
            self.baseline = build_state_head(cfg.decoder_state_dim, 1, "--decoder-state-dim")
        self.uses_states = self.baseline is not None

    def sequence_loss(self, scores, rows, references):
        n = self.cfg.seq_candidates
        samples = rows[:, :n]
        token_logprobs, mask = scores.token_logprobs[:, :n], scores.mask[:, :n]
        rewards = bleu_rewards(samples, references, self.padding_idx, self.eos, self.cfg.bleu_smooth)
        batch, _, length = samples.shape
        flat_rewards = rewards.reshape(-1)
        flat_mask = mask.reshape(-1, length)
        extra = {"reward": rewards.mean(dim=1).sum()}
        if self.baseline is None:
            advantages = flat_rewards - batch_average_baseline(flat_rewards)
            regression = torch.zeros_like(flat_rewards)
        else:
            states = scores.states[:, :n].detach()
            check_state_dim(states, self.cfg.decoder_state_dim)
            predicted = self.baseline(states).squeeze(-1).reshape(-1, length)
            advantages = flat_rewards[:, None] - predicted.detach().to(flat_rewards.dtype)
            regression = baseline_regression_loss(predicted, flat_rewards, flat_mask)
            extra["baseline_mse"] = (regression.detach() / flat_mask.sum(-1).clamp_min(1)).view(batch, n).mean(1).sum()
        policy = reinforce_loss(token_logprobs.reshape(-1, length), flat_mask, advantages)
        loss = policy + self.cfg.baseline_loss_weight * regression.to(policy.dtype)
        return loss.view(batch, n).mean(dim=1), extra
