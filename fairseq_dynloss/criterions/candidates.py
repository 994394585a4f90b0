"""Candidate translations for the sequence-level criterions, and teacher-forced scoring of them.

Shared by ``expected_bleu``, ``reinforce_bleu``, ``actor_critic_bleu`` and ``softmax_margin``:

* ``CandidateConfig`` -- the options every sequence-level criterion has (how many candidates,
  sampling or beam n-best, maximum length relative to the source, BLEU smoothing);
* ``generate_candidates`` -- n candidates per source from fairseq's ``SequenceGenerator``
  (built by the task), without grad and in eval mode, restoring the model's mode after;
* ``score_candidates`` -- a teacher-forced forward pass over the candidates WITH grad, through
  the model's own ``forward`` (so DDP sees it), optionally capturing the decoder states that
  feed the output projection (learned baselines, critics).
"""

# No "from __future__ import annotations": fairseq reads the dataclass field types at runtime.
import math
from argparse import Namespace
from dataclasses import dataclass, field
from typing import List, NamedTuple, Optional

import torch
import torch.nn.functional as F
from fairseq.dataclass import FairseqDataclass

from ..metrics import SMOOTH_DEFAULTS


@dataclass
class CandidateConfig(FairseqDataclass):
    seq_candidates: int = field(
        default=4, metadata={"help": "number n >= 1 of candidate translations per source"}
    )
    seq_beam: bool = field(
        default=False,
        metadata={"help": "take the beam-search n-best list (beam size n) as candidates instead "
                  "of n multinomial samples (the default)"},
    )
    seq_sampling_topk: int = field(
        default=-1, metadata={"help": "sample from the k most likely tokens only (-1: all)"}
    )
    seq_max_len_a: float = field(
        default=1.5, metadata={"help": "candidates have at most a * source_length + b tokens"}
    )
    seq_max_len_b: int = field(default=5, metadata={"help": "see --seq-max-len-a"})
    bleu_smooth: str = field(
        default="exp",
        metadata={"help": "sentence-BLEU smoothing, as sacrebleu: exp, floor, add-k or none"},
    )


class CandidateSet(NamedTuple):
    """Candidates of a batch.

    Attributes:
        tokens: (B, n, L) token ids, each ending with eos, right-padded with pad.
        references: (B, L') reference token ids (``sample["target"]``).
    """

    tokens: torch.Tensor
    references: torch.Tensor


def check_candidate_config(cfg: CandidateConfig) -> None:
    """Raise ValueError naming the bad option and what was expected."""
    n = cfg.seq_candidates
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"--seq-candidates={n!r}; expected an integer >= 1")
    if cfg.bleu_smooth not in SMOOTH_DEFAULTS:
        raise ValueError(
            f"--bleu-smooth={cfg.bleu_smooth!r}; expected one of {sorted(SMOOTH_DEFAULTS)}"
        )
    if cfg.seq_sampling_topk == 0 or cfg.seq_sampling_topk < -1:
        raise ValueError(f"--seq-sampling-topk={cfg.seq_sampling_topk}; expected -1 or k >= 1")
    if cfg.seq_sampling_topk > 0 and cfg.seq_beam:
        raise ValueError("--seq-sampling-topk needs sampling; drop --seq-beam")
    if not (math.isfinite(cfg.seq_max_len_a) and cfg.seq_max_len_a >= 0 and cfg.seq_max_len_b >= 1):
        raise ValueError(
            f"--seq-max-len-a={cfg.seq_max_len_a}, --seq-max-len-b={cfg.seq_max_len_b}; "
            "expected a finite a >= 0 and b >= 1"
        )


def check_positive(name: str, value: float) -> None:
    """Raise ValueError unless ``value`` is a finite number > 0 (``name``: the option)."""
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name}={value!r}; expected a finite number > 0")


def check_unit_interval(name: str, value: float) -> None:
    """Raise ValueError unless ``value`` is in [0, 1]."""
    if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
        raise ValueError(f"{name}={value!r}; expected a value in [0, 1]")


def _unwrap(model):
    """The model inside DDP / fairseq wrappers (for attribute access only)."""
    while hasattr(model, "module"):
        model = model.module
    return model


def generate_candidates(task, model, sample, cfg: CandidateConfig) -> CandidateSet:
    """n candidates per source: samples or the beam n-best list, without grad, in eval mode.

    The generator is built by ``task.build_generator`` (fairseq's ``SequenceGenerator``), which
    puts the model in eval mode; the model's previous mode is restored afterwards, so dropout
    stays on for the teacher-forced scoring pass during training.

    Args:
        task: the fairseq translation task.
        model: the (possibly wrapped) model.
        sample: a fairseq batch with ``net_input`` and ``target``.
        cfg: the criterion's ``CandidateConfig``.

    Returns:
        ``CandidateSet`` with tokens (B, n, L).
    """
    n = cfg.seq_candidates
    args = Namespace(
        beam=n, nbest=n, sampling=not cfg.seq_beam, sampling_topk=cfg.seq_sampling_topk,
        max_len_a=cfg.seq_max_len_a, max_len_b=cfg.seq_max_len_b, min_len=1,
    )
    was_training = model.training
    try:
        generator = task.build_generator([_unwrap(model)], args)
        with torch.no_grad():
            hypos = generator.generate([_unwrap(model)], {"net_input": sample["net_input"]})
    finally:
        model.train(was_training)
    pad = task.target_dictionary.pad()
    tokens = pad_candidates([[h["tokens"] for h in nbest[:n]] for nbest in hypos], n, pad)
    return CandidateSet(tokens.to(sample["target"].device), sample["target"])


def pad_candidates(candidates: List[List[torch.Tensor]], n: int, pad: int) -> torch.Tensor:
    """Stack per-source lists of n 1-D token tensors into a (B, n, L) pad-padded tensor."""
    for i, row in enumerate(candidates):
        if len(row) != n:
            raise ValueError(f"source {i} has {len(row)} candidates; expected {n}")
    width = max(t.numel() for row in candidates for t in row)
    flat = [F.pad(t, (0, width - t.numel()), value=pad) for row in candidates for t in row]
    return torch.stack(flat).view(len(candidates), n, width)


class CandidateScores(NamedTuple):
    """Teacher-forced scores of candidates.

    Attributes:
        lprobs: (B, n, L, V) token log-probabilities.
        token_logprobs: (B, n, L) log-probability of each candidate token (0 at pad).
        mask: (B, n, L) True at real (non-pad) tokens, eos included.
        states: (B, n, L, H) decoder states fed to the output projection, or None.
    """

    lprobs: torch.Tensor
    token_logprobs: torch.Tensor
    mask: torch.Tensor
    states: Optional[torch.Tensor]


def output_projection(model) -> torch.nn.Module:
    """The decoder's final vocabulary projection (transformer: output_projection, LSTM: fc_out)."""
    decoder = _unwrap(model).decoder
    for name in ("output_projection", "fc_out"):
        module = getattr(decoder, name, None)
        if isinstance(module, torch.nn.Linear):
            return module
    raise ValueError(
        f"decoder {type(decoder).__name__} has no nn.Linear output_projection or fc_out; "
        "expected a fairseq transformer or LSTM decoder (adaptive softmax is not supported)"
    )


def score_candidates(model, sample, tokens: torch.Tensor, pad: int, eos: int,
                     with_states: bool = False) -> CandidateScores:
    """Teacher-forced forward pass over candidates, with grad, through ``model(...)``.

    Each source is repeated once per candidate; the decoder input is the candidate shifted
    right behind eos, as fairseq's ``prev_output_tokens``.

    Args:
        model: the (possibly wrapped) fairseq encoder-decoder model.
        sample: the batch whose ``net_input`` holds the sources.
        tokens: (B, n, L) candidates (each ending with eos, pad-padded).
        pad, eos: dictionary ids.
        with_states: also return the decoder states (input of the output projection).

    Returns:
        ``CandidateScores``.
    """
    batch, n, length = tokens.shape
    flat = tokens.reshape(batch * n, length)
    mask = flat.ne(pad)
    prev = torch.cat([flat.new_full((batch * n, 1), eos), flat[:, :-1]], dim=1)
    prev = prev.masked_fill(~mask, pad)  # as fairseq's collater: pads stay at the end
    net_input = sample["net_input"]
    src_tokens = net_input["src_tokens"].repeat_interleave(n, dim=0)
    src_lengths = net_input["src_lengths"].repeat_interleave(n, dim=0)
    captured = []
    handle = None
    if with_states:
        handle = output_projection(model).register_forward_hook(
            lambda module, inputs, output: captured.append(inputs[0])
        )
    try:
        net_output = model(src_tokens=src_tokens, src_lengths=src_lengths, prev_output_tokens=prev)
    finally:
        if handle is not None:
            handle.remove()
    lprobs = _unwrap(model).get_normalized_probs(net_output, log_probs=True)
    picked = lprobs.gather(-1, flat.masked_fill(~mask, 0).unsqueeze(-1)).squeeze(-1)
    picked = picked.masked_fill(~mask, 0.0)
    states = None
    if with_states:
        states = captured[-1].reshape(batch, n, length, -1)
    return CandidateScores(
        lprobs.view(batch, n, length, -1),
        picked.view(batch, n, length),
        mask.view(batch, n, length),
        states,
    )
