"""Clipped n-gram match counts for a batch of sentence pairs, without a loop over sentences.

For hypothesis n-gram g, BLEU counts ``min(count_hyp(g), count_ref(g))``. We get these counts
from one boolean tensor per order, ``E_n[i, j, b] = (hyp n-gram i == ref n-gram j)`` in
sentence b, built from the unigram comparison by shifted ANDs
(``E_n[i, j] = E_{n-1}[i, j] & E_1[i+n-1, j+n-1]``), so n-grams are compared exactly and never
hashed. With ``F_n`` the same tensor for the reference against itself:

* column sum of ``E_n``: ``ch_j`` = occurrences in the hypothesis of ref n-gram j;
* column sum of ``F_n``: ``cr_j`` = occurrences in the reference of ref n-gram j (>= 1);
* the ``cr_j`` columns holding one n-gram g each add ``min(1, ch_j / cr_j)``, together
  ``min(count_hyp(g), count_ref(g))``; n-grams absent from the hypothesis add 0.

The work is O(Lh * Lr) booleans per sentence and order, done as a few whole-tensor passes. The
batch is the innermost (contiguous) dimension, so comparisons and sums run over long vectors;
sentences are sorted by length and processed in chunks cut to each chunk's longest sentences,
which avoids most padding and keeps a CPU chunk in cache.
"""

from __future__ import annotations

import sys

import torch

# Elements (bytes) of one E_1 tensor per chunk of sentences. On CPU about 1 MiB keeps every
# pass over E_n in cache, worth more than the per-chunk overhead (1.6x at 4096 x 30); on a GPU
# fewer, larger chunks save kernel launches, and the bound only caps memory.
_CPU_CHUNK_ELEMENTS = 2**20
_DEVICE_CHUNK_ELEMENTS = 2**27


def _largest_id(words: torch.Tensor, inside: torch.Tensor) -> int:
    """Largest token id where ``inside``, or a larger one; raises ValueError for negative ids."""
    if words.numel() == 0:
        return 0
    lowest, highest = (int(v) for v in torch.aminmax(words))
    if lowest < 0:  # negative padding is fine, negative words are not
        lowest, highest = (int(v) for v in torch.aminmax(torch.where(inside, words, 0)))
        if lowest < 0:
            raise ValueError(f"token ids span [{lowest}, {highest}]; expected ids >= 0")
    return highest


def _byte_planes(ids: torch.Tensor, order: torch.Tensor, planes: int) -> torch.Tensor:
    """(B, L) non-negative int64 ids -> (planes, L, B) uint8 with rows taken in ``order``.

    Plane k holds byte k of each id. Comparing uint8 is several times faster on CPU than
    comparing int32 or int64 (the result is a byte too), so ids are compared plane by plane.
    """
    ordered = ids.index_select(0, order)
    as_bytes = ordered.view(torch.uint8).view(*ordered.shape, 8)
    if sys.byteorder == "big":
        as_bytes = as_bytes.flip(-1)  # least significant byte first
    return as_bytes[..., :planes].permute(2, 1, 0).contiguous()


def _equal_ngram_starts(left: torch.Tensor, right: torch.Tensor, max_order: int):
    """Yield ``E_n`` (Ll - n + 1, Lr - n + 1, b), n = 1..max_order, for byte planes (P, L, b)."""
    unigram_equal = left[0, :, None, :] == right[0, None, :, :]
    for plane in range(1, left.size(0)):
        unigram_equal &= left[plane, :, None, :] == right[plane, None, :, :]
    equal = unigram_equal
    for shift in range(max_order):
        if shift:
            equal = equal[:-1, :-1] & unigram_equal[shift:, shift:]
        yield equal


def _matches_of_chunk(hyp: torch.Tensor, ref: torch.Tensor, max_order: int) -> torch.Tensor:
    """Clipped matches for byte planes hyp (P, Lh, b) and ref (P, Lr, b); returns (b, max_order)."""
    ref_len = ref.size(1)
    # Counts are at most the sentence length: uint8 sums are exact (and fastest) up to 255.
    count_dtype = torch.uint8 if max(hyp.size(1), ref_len) <= 255 else torch.int32
    # Per order and ref position: occurrences of the ref n-gram in the hypothesis and in the
    # reference. Columns past the last n-gram of an order keep 0 / 1 and add nothing.
    in_hyp = torch.zeros(max_order, *ref.shape[1:], dtype=count_dtype, device=ref.device)
    in_ref = torch.ones_like(in_hyp)
    orders = zip(_equal_ngram_starts(hyp, ref, max_order), _equal_ngram_starts(ref, ref, max_order))
    for shift, (hyp_ref, ref_ref) in enumerate(orders):
        if hyp_ref.numel() == 0:  # a side is shorter than this order
            break
        columns = ref_len - shift
        # Sums over the leading dimension: the fast reduction on CPU.
        torch.sum(hyp_ref.view(torch.uint8), dim=0, dtype=count_dtype, out=in_hyp[shift, :columns])
        torch.sum(ref_ref.view(torch.uint8), dim=0, dtype=count_dtype, out=in_ref[shift, :columns])
    share = in_hyp.double().div_(in_ref.double()).clamp_max_(1)
    # Exact: each n-gram's shares sum to an integer, float error is ~1e-15.
    return share.sum(dim=1).round_().to(torch.int64).t()


def clipped_ngram_matches(
    hyp: torch.Tensor,
    hyp_len: torch.Tensor,
    ref: torch.Tensor,
    ref_len: torch.Tensor,
    max_order: int = 4,
) -> torch.Tensor:
    """Per-sentence clipped n-gram matches, orders 1..max_order.

    Args:
        hyp: (B, Lh) left-aligned hypothesis token ids (``strip_special`` output), >= 0.
        hyp_len: (B,) hypothesis lengths; positions at or after the length are ignored.
        ref: (B, Lr) left-aligned reference token ids.
        ref_len: (B,) reference lengths.
        max_order: the largest n-gram order.

    Returns:
        (B, max_order) int64: ``sum_g min(count_hyp(g), count_ref(g))`` per order.
    """
    positions = torch.arange(max(hyp.size(1), ref.size(1)), device=hyp.device)
    hyp_inside = positions[None, : hyp.size(1)] < hyp_len[:, None]
    ref_inside = positions[None, : ref.size(1)] < ref_len[:, None]
    largest = max(_largest_id(hyp, hyp_inside), _largest_id(ref, ref_inside))
    # Two ids above every word mark the positions past each sentence's end; different for hyp
    # and ref, so padding never matches padding.
    hyp_pad, ref_pad = largest + 1, largest + 2
    planes = max(1, (ref_pad.bit_length() + 7) // 8)
    # Chunks of sentences of similar length, each cut to its own longest sentences: the work
    # is sum(Lh * Lr) over chunks instead of B * max(Lh) * max(Lr).
    by_length = torch.argsort(hyp_len * (ref.size(1) + 1) + ref_len)
    hyp_len, ref_len = hyp_len[by_length], ref_len[by_length]
    hyp_ids = torch.where(hyp_inside, hyp.long(), hyp_pad)
    ref_ids = torch.where(ref_inside, ref.long(), ref_pad)
    hyp_planes = _byte_planes(hyp_ids, by_length, planes)
    ref_planes = _byte_planes(ref_ids, by_length, planes)
    budget = _CPU_CHUNK_ELEMENTS if hyp.device.type == "cpu" else _DEVICE_CHUNK_ELEMENTS
    chunk = max(1, budget // max(1, hyp.size(1) * ref.size(1)))
    matches = torch.zeros(hyp.size(0), max_order, dtype=torch.int64, device=hyp.device)
    for start in range(0, hyp.size(0), chunk):
        part = slice(start, start + chunk)
        longest_hyp, longest_ref = int(hyp_len[part].max()), int(ref_len[part].max())
        matches[by_length[part]] = _matches_of_chunk(
            hyp_planes[:, :longest_hyp, part], ref_planes[:, :longest_ref, part], max_order
        )
    return matches
