"""The development objective a translation_l2t teacher maximises (``--teacher-dev-objective``).

All three are teacher-forced scores of the student on a dev batch, differentiable in its weights:

* ``nll``            -- minus the NLL per non-pad target token, ``-mean_t -log p(y_t | y_<t, x)``;
* ``token_accuracy`` -- the expected token accuracy ``mean_t p(y_t | y_<t, x)``
  (``metrics.expected_token_accuracy``);
* ``expected_bleu``  -- the slides' smoothed metric: per source, n candidates are sampled from the
  unrolled student itself (without grad, as MRT: the candidates are constants), scored
  teacher-forced with grad, and ``E_q[BLEU] / 100`` with ``q = softmax(alpha log p(y_k | x))``
  renormalised over the candidates (``metrics.expected_bleu``), averaged over the sources.

Each is a mean per batch; the objective is the mean over the dev batches.
"""

from typing import Callable, Dict, NamedTuple, Optional

import torch

from ..criterions.candidates import CandidateConfig, generate_candidates, score_candidates
from ..metrics import append_reference, expected_bleu, expected_token_accuracy

DEV_OBJECTIVES = ("nll", "token_accuracy", "expected_bleu")


def check_dev_objective(name: str) -> str:
    """``name`` if it is a dev objective, else ValueError naming it and the choices."""
    if name not in DEV_OBJECTIVES:
        raise ValueError(f"--teacher-dev-objective={name!r}; expected one of {list(DEV_OBJECTIVES)}")
    return name


class BleuOptions(NamedTuple):
    """``expected_bleu``: n candidates per source (>= 1), sharpness alpha (> 0), whether the
    reference joins each candidate set, and the sentence-BLEU smoothing."""

    candidates: int = 4
    alpha: float = 1.0
    include_reference: bool = False
    smooth: str = "exp"


class BoundStudent:
    """A fairseq model with its weights replaced by ``params``: callable like the model (so
    ``criterions.candidates.score_candidates`` runs it), with the model's ``get_normalized_probs``.

    Args:
        forward: ``forward(params, **net_input) -> net_output`` (``hypergrad.FunctionalModule``).
        model: the fairseq model (its own weights are not used).
        params: ``{name: Tensor}`` of every parameter.
    """

    def __init__(self, forward: Callable, model, params: Dict[str, torch.Tensor]):
        self.forward, self.model, self.params = forward, model, params

    def __call__(self, **net_input):
        return self.forward(self.params, **net_input)

    def get_normalized_probs(self, net_output, log_probs: bool):
        return self.model.get_normalized_probs(net_output, log_probs=log_probs)


def teacher_forced_score(kind: str, student: BoundStudent, sample: dict, pad: int) -> torch.Tensor:
    """``nll`` or ``token_accuracy`` of one batch (0-d, to maximise)."""
    lprobs = student.get_normalized_probs(student(**sample["net_input"]), log_probs=True)  # (N, L, V)
    target = sample["target"]
    if kind == "token_accuracy":
        return expected_token_accuracy(lprobs, target, pad)
    real = target != pad
    picked = lprobs.gather(-1, target.masked_fill(~real, 0).unsqueeze(-1)).squeeze(-1)
    return picked[real].mean()  # -NLL per token


def expected_bleu_score(student: BoundStudent, sample: dict, candidates: torch.Tensor, pad: int, eos: int,
                        options: BleuOptions) -> torch.Tensor:
    """Mean expected sentence BLEU / 100 of one batch over given candidates (0-d, to maximise).

    Args:
        candidates: (B, n, L) candidate ids (constants), each ending with eos, pad-padded.
    """
    if options.include_reference:
        candidates = append_reference(candidates, sample["target"], pad)
    scores = score_candidates(student, sample, candidates, pad, eos)
    seq_logprobs = scores.token_logprobs.sum(dim=-1)  # (B, n)
    value = expected_bleu(candidates, seq_logprobs, sample["target"], pad, alpha=options.alpha, eos=eos,
                          smooth_method=options.smooth)
    return value.mean() / 100.0


def sample_candidates(task, sampler, sample: dict, options: BleuOptions, seed: int) -> torch.Tensor:
    """(B, n, L) candidates sampled from ``sampler`` (a model holding the unrolled weights),
    with a fixed seed and without moving the global RNG (training's dropout stays as it was)."""
    cfg = CandidateConfig(seq_candidates=options.candidates, bleu_smooth=options.smooth)
    device = sample["target"].device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        return generate_candidates(task, sampler, sample, cfg).tokens


def dev_objective(kind: str, student: BoundStudent, samples, pad: int, eos: Optional[int] = None,
                  candidates=None, options: BleuOptions = BleuOptions()) -> torch.Tensor:
    """The dev objective (0-d, to maximise): the mean over ``samples`` of each batch's score.

    Args:
        kind: one of ``DEV_OBJECTIVES``.
        student: the student at the weights to score.
        samples: fairseq dev batches.
        candidates: ``expected_bleu``: one (B, n, L) tensor per batch (``sample_candidates``).
    """
    check_dev_objective(kind)
    if kind == "expected_bleu":
        if candidates is None or len(candidates) != len(samples):
            raise ValueError(f"expected_bleu needs one candidate tensor per dev batch ({len(samples)}); "
                             f"got {None if candidates is None else len(candidates)}")
        scores = [expected_bleu_score(student, s, c, pad, eos, options) for s, c in zip(samples, candidates)]
    else:
        scores = [teacher_forced_score(kind, student, s, pad) for s in samples]
    return torch.stack(scores).mean()
