"""Batched sentence BLEU on token ids, equal to ``sacrebleu.sentence_bleu(..., tokenize="none")``.

Two layers, as in sacrebleu:

* ``bleu_stats`` -- sufficient statistics per sentence (clipped matches and totals per n-gram
  order, hypothesis and reference lengths). They are summable: fairseq logging sums them over
  batches and workers and ``corpus_bleu_from_stats`` rebuilds ``sacrebleu.corpus_bleu``.
* ``bleu_from_stats`` -- a vectorised copy of ``sacrebleu.metrics.bleu.BLEU.compute_bleu``
  (smoothing, effective order, brevity penalty, zero-length cases), one score per row.

``sentence_bleu`` chains the two with sacrebleu's sentence defaults (effective order on).
Scores are float64 on the 0..100 scale, on the device of the inputs.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch

from fairseq_dynloss.metrics.ngram_matches import clipped_ngram_matches_inside
from fairseq_dynloss.metrics.tokens import check_token_matrix, kept_tokens

MAX_NGRAM_ORDER = 4

# sacrebleu's BLEU.SMOOTH_DEFAULTS (Chen & Cherry 2014): default smooth_value per method.
SMOOTH_DEFAULTS = {"none": None, "floor": 0.1, "add-k": 1, "exp": None}

# sacrebleu.utils.my_log(0): the log of a zero precision, so that the score underflows to 0.
_LOG_ZERO = -9999999999.0


class BleuStats(NamedTuple):
    """BLEU sufficient statistics; every field sums over sentences.

    Attributes:
        matches: (..., 4) clipped n-gram matches per order.
        totals: (..., 4) hypothesis n-grams per order.
        hyp_len: (...,) hypothesis lengths.
        ref_len: (...,) reference lengths.
    """

    matches: torch.Tensor
    totals: torch.Tensor
    hyp_len: torch.Tensor
    ref_len: torch.Tensor


def _smooth_value(smooth_method: str, smooth_value: Optional[float]) -> Optional[float]:
    if smooth_method not in SMOOTH_DEFAULTS:
        raise ValueError(
            f"smooth_method={smooth_method!r}; expected one of {sorted(SMOOTH_DEFAULTS)}"
        )
    return SMOOTH_DEFAULTS[smooth_method] if smooth_value is None else smooth_value


def bleu_stats(
    hyps: torch.Tensor, refs: torch.Tensor, pad: int, eos: Optional[int] = None
) -> BleuStats:
    """Sentence-level BLEU statistics for a batch of (hypothesis, reference) pairs.

    Args:
        hyps: (B, Lh) hypothesis token ids.
        refs: (B, Lr) reference token ids, on the same device.
        pad: padding id; pad tokens are not part of a sentence.
        eos: optional end-of-sentence id, also removed.

    Returns:
        ``BleuStats`` with matches and totals (B, 4) and lengths (B,), all int64.
    """
    check_token_matrix("hyps", hyps)
    check_token_matrix("refs", refs)
    if hyps.size(0) != refs.size(0):
        raise ValueError(
            f"hyps has {hyps.size(0)} sentences and refs has {refs.size(0)}; expected equal"
        )
    if hyps.device != refs.device:
        raise ValueError(f"hyps is on {hyps.device} and refs on {refs.device}; expected one device")
    # The matcher takes the keep masks directly: no pad fill, no second length mask.
    hyp_tokens, hyp_inside, hyp_len = kept_tokens(hyps, pad, eos)
    ref_tokens, ref_inside, ref_len = kept_tokens(refs, pad, eos)
    matches = clipped_ngram_matches_inside(
        hyp_tokens, hyp_inside, hyp_len, ref_tokens, ref_inside, ref_len, MAX_NGRAM_ORDER
    )
    orders = torch.arange(1, MAX_NGRAM_ORDER + 1, device=hyps.device)
    totals = (hyp_len[:, None] - orders[None, :] + 1).clamp_min(0)
    return BleuStats(matches, totals, hyp_len, ref_len)


def bleu_from_stats(
    stats: BleuStats,
    smooth_method: str = "exp",
    smooth_value: Optional[float] = None,
    effective_order: bool = True,
) -> torch.Tensor:
    """BLEU per row of statistics, exactly as ``sacrebleu`` ``BLEU.compute_bleu``.

    Args:
        stats: ``BleuStats`` with matches and totals (N, 4), lengths (N,).
        smooth_method: ``"exp"``, ``"floor"``, ``"add-k"`` or ``"none"``.
        smooth_value: for ``floor`` (default 0.1) and ``add-k`` (default 1).
        effective_order: stop at the first order without hypothesis n-grams (sacrebleu's
            sentence BLEU); ``False`` is corpus BLEU.

    Returns:
        (N,) float64 scores on the 0..100 scale.
    """
    smooth_value = _smooth_value(smooth_method, smooth_value)
    correct = stats.matches.to(torch.float64)
    total = stats.totals.to(torch.float64)
    sys_len = stats.hyp_len.to(torch.float64)
    ref_len = stats.ref_len.to(torch.float64)

    brevity = torch.exp(1 - ref_len / sys_len.clamp_min(1))
    brevity = torch.where(sys_len > 0, brevity, torch.zeros_like(brevity))
    brevity = torch.where(sys_len < ref_len, brevity, torch.ones_like(brevity))
    # sacrebleu returns 0 before any smoothing when nothing matches (its issue #141).
    no_match = (correct == 0).all(dim=-1)

    if smooth_method == "add-k":
        correct = torch.cat([correct[..., :1], correct[..., 1:] + smooth_value], dim=-1)
        total = torch.cat([total[..., :1], total[..., 1:] + smooth_value], dim=-1)
    # sacrebleu's loop stops at the first order with no hypothesis n-grams.
    active = torch.cumprod((total > 0).to(torch.int64), dim=-1).bool()
    zero = active & (correct == 0)
    safe_total = torch.where(active, total, torch.ones_like(total))
    if smooth_method == "exp":
        halvings = torch.cumsum(zero.to(torch.float64), dim=-1)
        smoothed = 100.0 / (torch.exp2(halvings) * safe_total)
    elif smooth_method == "floor":
        smoothed = 100.0 * smooth_value / safe_total
    else:
        smoothed = torch.zeros_like(total)
    precision = torch.where(zero, smoothed, 100.0 * correct / safe_total)
    precision = torch.where(active, precision, torch.zeros_like(precision))

    n_orders = total.size(-1)
    n_active = active.sum(dim=-1)
    # With no active order sacrebleu keeps max_ngram_order (the score is 0 then anyway).
    eff_order = torch.full_like(n_active, n_orders)
    if effective_order:
        eff_order = torch.where(n_active > 0, n_active, eff_order)
    in_mean = torch.arange(n_orders, device=total.device) < eff_order[..., None]
    log_precision = torch.where(
        precision > 0, torch.log(precision), torch.full_like(precision, _LOG_ZERO)
    )
    mean_log = (log_precision * in_mean).sum(dim=-1) / eff_order
    score = brevity * torch.exp(mean_log)
    return torch.where(no_match, torch.zeros_like(score), score)


def sentence_bleu(
    hyps: torch.Tensor,
    refs: torch.Tensor,
    pad: int,
    eos: Optional[int] = None,
    smooth_method: str = "exp",
    smooth_value: Optional[float] = None,
) -> torch.Tensor:
    """Sentence BLEU of each hypothesis against its reference.

    Equals ``sacrebleu.sentence_bleu(" ".join(map(str, hyp)), [" ".join(map(str, ref))],
    tokenize="none", smooth_method=..., smooth_value=...).score`` on the stripped sentences.

    Args:
        hyps: (B, Lh) hypothesis token ids.
        refs: (B, Lr) reference token ids.
        pad: padding id.
        eos: optional end-of-sentence id, removed before scoring.
        smooth_method: ``"exp"`` (default), ``"floor"``, ``"add-k"`` or ``"none"``.
        smooth_value: for ``floor`` (default 0.1) and ``add-k`` (default 1).

    Returns:
        (B,) float64 BLEU on the 0..100 scale.
    """
    _smooth_value(smooth_method, smooth_value)  # reject a bad method before the work
    stats = bleu_stats(hyps, refs, pad, eos)
    return bleu_from_stats(stats, smooth_method, smooth_value, effective_order=True)


def corpus_bleu_from_stats(
    stats: BleuStats,
    smooth_method: str = "exp",
    smooth_value: Optional[float] = None,
    effective_order: bool = False,
) -> float:
    """Corpus BLEU from summed (or per-sentence) statistics, as ``sacrebleu.corpus_bleu``.

    Args:
        stats: ``BleuStats`` of tensors or lists: matches/totals (4,) already summed (e.g. from
            fairseq logging outputs), or (N, 4) per sentence, summed here.
        smooth_method: as ``sacrebleu.corpus_bleu`` (default ``"exp"``).
        smooth_value: for ``floor`` and ``add-k``.
        effective_order: sacrebleu's ``use_effective_order`` (default off for corpora).

    Returns:
        Corpus BLEU on the 0..100 scale.
    """
    matches = torch.as_tensor(stats.matches, dtype=torch.float64)
    if matches.dim() not in (1, 2) or matches.size(-1) != MAX_NGRAM_ORDER:
        raise ValueError(
            f"stats.matches has shape {tuple(matches.shape)}; expected ({MAX_NGRAM_ORDER},) "
            f"or (N, {MAX_NGRAM_ORDER})"
        )
    totals, hyp_len, ref_len = (
        torch.as_tensor(field, dtype=torch.float64, device=matches.device) for field in stats[1:]
    )
    if matches.dim() == 2:
        matches, totals = matches.sum(dim=0), totals.sum(dim=0)
        hyp_len, ref_len = hyp_len.sum(), ref_len.sum()
    summed = BleuStats(matches[None], totals[None], hyp_len.reshape(1), ref_len.reshape(1))
    return float(bleu_from_stats(summed, smooth_method, smooth_value, effective_order)[0])
