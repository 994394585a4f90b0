"""``--criterion actor_critic_bleu``: actor-critic for sequence prediction (Bahdanau et al. 2017).

Simplified but faithful: the critic is a linear head ``Q(a; y_<t) = W h_t + c`` over the actor's
detached decoder state h_t (the paper's critic is a separate encoder-decoder that also reads the
reference); it is trained by one-step TD targets ``r_t + sum_a p(a | y_<=t) Q(a; y_<=t)`` from the
intermediate rewards ``r_t = BLEU(y_<=t) - BLEU(y_<t)`` with the paper's variance penalty, and
the actor follows ``sum_t sum_a grad p(a | y_<t) Q(a; y_<t)``. The critic's parameters live in
this criterion (fairseq optimises, checkpoints and DDP-wraps them); it starts at Q = 0, so the
actor is only moved once the critic has learned something. The maths is
``losses/actor_critic.py``.
"""

# No "from __future__ import annotations": fairseq reads the dataclass field types at runtime.
from dataclasses import dataclass, field

from fairseq.criterions import register_criterion

from ..losses.actor_critic import actor_critic_losses, intermediate_rewards, prefix_bleu
from .candidates import check_positive
from .sequence_base import SequenceCriterion, SequenceCriterionConfig
from .state_heads import build_state_head, check_state_dim


@dataclass
class ActorCriticBleuConfig(SequenceCriterionConfig):
    decoder_state_dim: int = field(
        default=0,
        metadata={"help": "size of the decoder states feeding the output projection (the "
                  "transformer's --decoder-embed-dim, the LSTM's --decoder-out-embed-dim)"},
    )
    critic_loss_weight: float = field(
        default=1.0, metadata={"help": "weight > 0 of the critic's TD loss"}
    )
    critic_variance_penalty: float = field(
        default=1e-3,
        metadata={"help": "lambda >= 0 of the penalty sum_a (Q(a) - mean Q)^2 (paper's eq. 10)"},
    )


@register_criterion("actor_critic_bleu", dataclass=ActorCriticBleuConfig)
class ActorCriticBleuCriterion(SequenceCriterion):
    """Actor loss + weighted critic loss per sampled sequence, averaged over the samples."""

    uses_states = True
    mean_per_sentence_keys = ("reward", "critic_loss")

    def __init__(self, task, cfg: ActorCriticBleuConfig):
        super().__init__(task, cfg)
        if cfg.seq_beam:
            raise ValueError("--seq-beam with actor_critic_bleu; the actor needs samples")
        check_positive("--critic-loss-weight", cfg.critic_loss_weight)
        if not cfg.critic_variance_penalty >= 0:
            raise ValueError(
                f"--critic-variance-penalty={cfg.critic_variance_penalty!r}; expected a value >= 0"
            )
        self.critic = build_state_head(
            cfg.decoder_state_dim, len(task.target_dictionary), "--decoder-state-dim"
        )

    def sequence_loss(self, scores, rows, references):
        n = self.cfg.seq_candidates
        batch, _, length = rows.shape
        samples = rows[:, :n].reshape(batch * n, length)
        mask = scores.mask[:, :n].reshape(batch * n, length)
        states = scores.states[:, :n].detach()
        check_state_dim(states, self.cfg.decoder_state_dim)
        q_values = self.critic(states).reshape(batch * n, length, -1)
        lprobs = scores.lprobs[:, :n].reshape(batch * n, length, -1)
        refs = references.repeat_interleave(n, dim=0)
        prefixes = prefix_bleu(samples, refs, self.padding_idx, self.eos, self.cfg.bleu_smooth)
        rewards = intermediate_rewards(prefixes, mask)
        losses = actor_critic_losses(lprobs, q_values.to(lprobs.dtype), samples, rewards, mask,
                                     self.cfg.critic_variance_penalty)
        loss = losses.actor + self.cfg.critic_loss_weight * losses.critic
        extra = {
            "reward": rewards.sum(-1).view(batch, n).mean(1).sum(),
            "critic_loss": losses.critic.detach().view(batch, n).mean(1).sum(),
        }
        return loss.view(batch, n).mean(dim=1), extra
