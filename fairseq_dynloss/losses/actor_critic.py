"""Actor-critic for sequence prediction (Bahdanau et al. 2017), the maths only (pure torch).

For a sampled sequence y_1..y_T (eos included) and reference y*:

* intermediate rewards ``r_t = BLEU(y_<=t) - BLEU(y_<t)`` (their sum is BLEU(y));
* a critic ``Q(a; y_<t)`` for every action a; its TD target for the taken action is
  ``q_t = r_t + sum_a p(a | y_<=t) Q(a; y_<=t)`` (0 after the last token), with the next-step
  values held constant (the paper's delayed target critic, here the current critic detached);
* the critic's variance penalty ``lambda * sum_a (Q(a) - mean_a Q)^2`` (paper's eq. 10);
* the actor's loss ``-sum_t sum_a p(a | y_<t) Q(a; y_<t)`` with Q held constant: its gradient
  is the paper's ``sum_t sum_a dp(a | y_<t) Q(a; y_<t)``.

Rewards use BLEU on the 0..1 scale.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch

from fairseq_dynloss.metrics import sentence_bleu


def prefix_bleu(
    tokens: torch.Tensor,
    references: torch.Tensor,
    pad: int,
    eos: Optional[int] = None,
    smooth_method: str = "exp",
) -> torch.Tensor:
    """Sentence BLEU / 100 of every prefix ``y_<=t`` (no grad), batched over all prefixes.

    Args:
        tokens: (N, L) sequences, pad-padded.
        references: (N, L') reference token ids.
        pad, eos: ids removed before scoring.
        smooth_method: sentence-BLEU smoothing.

    Returns:
        (N, L) float64; entry t is BLEU(tokens[:, :t + 1]) / 100.
    """
    n, length = tokens.shape
    keep = torch.ones(length, length, dtype=torch.bool, device=tokens.device).tril()  # [t, j]: j <= t
    prefixes = torch.where(keep[None], tokens[:, None, :], torch.full_like(tokens[:, None, :], pad))
    with torch.no_grad():
        scores = sentence_bleu(
            prefixes.reshape(n * length, length), references.repeat_interleave(length, dim=0),
            pad, eos, smooth_method,
        )
    return scores.view(n, length) / 100.0


def intermediate_rewards(prefix_scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``r_t = BLEU(y_<=t) - BLEU(y_<t)`` with BLEU(empty) = 0; zero at pads.

    Args:
        prefix_scores: (N, L) from ``prefix_bleu``.
        mask: (N, L) True at real tokens (a real token never follows a pad).

    Returns:
        (N, L) rewards; each row sums to the BLEU of the whole sequence.
    """
    previous = torch.cat([torch.zeros_like(prefix_scores[:, :1]), prefix_scores[:, :-1]], dim=1)
    return (prefix_scores - previous) * mask


def expected_values(probs: torch.Tensor, q_values: torch.Tensor) -> torch.Tensor:
    """``V_t = sum_a p(a | y_<t) Q(a; y_<t)``: (N, L, V), (N, L, V) -> (N, L)."""
    return (probs * q_values).sum(dim=-1)


def td_targets(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """One-step TD targets ``q_t = r_t + V_{t+1}`` (V after the last real token is 0), no grad.

    Args:
        rewards: (N, L) intermediate rewards.
        values: (N, L) V_t of each position (the critic's expectation under the actor).
        mask: (N, L) True at real tokens.

    Returns:
        (N, L) targets, zero at pads.
    """
    values = (values.detach() * mask).to(rewards.dtype)
    following = torch.cat([values[:, 1:], torch.zeros_like(values[:, :1])], dim=1)
    return (rewards + following) * mask


class ActorCriticLosses(NamedTuple):
    """Per-sequence losses (N,): ``actor``, ``critic`` (TD error + variance penalty)."""

    actor: torch.Tensor
    critic: torch.Tensor


def actor_critic_losses(
    lprobs: torch.Tensor,
    q_values: torch.Tensor,
    tokens: torch.Tensor,
    rewards: torch.Tensor,
    mask: torch.Tensor,
    variance_penalty: float = 0.0,
) -> ActorCriticLosses:
    """Actor and critic losses of Bahdanau et al. (2017) for sampled sequences.

    Args:
        lprobs: (N, L, V) actor log-probabilities (teacher-forced on ``tokens``).
        q_values: (N, L, V) critic values ``Q(a; y_<t)``.
        tokens: (N, L) the sampled actions y_t.
        rewards: (N, L) intermediate rewards (``intermediate_rewards``).
        mask: (N, L) True at real tokens.
        variance_penalty: lambda >= 0 of the critic's variance penalty.

    Returns:
        ``ActorCriticLosses``; the actor loss carries gradient only to ``lprobs`` and the critic
        loss only to ``q_values``.
    """
    if lprobs.shape != q_values.shape or lprobs.shape[:2] != tokens.shape:
        raise ValueError(
            f"lprobs {tuple(lprobs.shape)}, q_values {tuple(q_values.shape)}, tokens "
            f"{tuple(tokens.shape)}; expected (N, L, V), (N, L, V), (N, L)"
        )
    if variance_penalty < 0:
        raise ValueError(f"variance_penalty={variance_penalty!r}; expected a value >= 0")
    mask_f = mask.to(lprobs.dtype)
    probs = lprobs.exp()
    actor = -(expected_values(probs, q_values.detach()) * mask_f).sum(dim=-1)
    values = expected_values(probs.detach(), q_values.detach())
    targets = td_targets(rewards, values, mask).to(q_values.dtype)
    taken = q_values.gather(-1, tokens.masked_fill(~mask, 0).unsqueeze(-1)).squeeze(-1)
    td_error = ((taken - targets).pow(2) * mask_f).sum(dim=-1)
    spread = (q_values - q_values.mean(dim=-1, keepdim=True)).pow(2).sum(dim=-1)
    critic = td_error + variance_penalty * (spread * mask_f).sum(dim=-1)
    return ActorCriticLosses(actor, critic)
