"""Clipped n-gram match counts for a batch of sentence pairs, without a loop over sentences.

For hypothesis n-gram g, BLEU counts ``min(count_hyp(g), count_ref(g))``. We get these counts
from one boolean tensor per order, ``E_n[i, j, b] = (hyp n-gram i == ref n-gram j)`` in
sentence b, built from the unigram comparison by shifted ANDs
(``E_n[i, j] = E_{n-1}[i, j] & E_1[i+n-1, j+n-1]``), so n-grams are compared exactly and never
hashed. With ``F_n`` the same tensor for the reference against itself, kept only where
``k <= j`` (row k, column j):

* column sum of ``E_n``: ``ch_j`` = occurrences in the hypothesis of ref n-gram j;
* column sum of ``F_n``: ``rank_j`` = 1 + earlier occurrences in the reference of n-gram j
  (``F_n`` is stored by distance ``j - k``, see ``_equal_earlier_ngrams``);
* the ``count_ref(g)`` columns holding one n-gram g have ranks 1, 2, ..., count_ref(g) and all
  have ``ch_j = count_hyp(g)``, so ``sum_j [ch_j >= rank_j]`` is ``min(count_hyp, count_ref)``
  summed over g, in integers; n-grams absent from the hypothesis add 0.

The work is O(Lh * Lr) booleans per sentence and order, done as a few whole-tensor passes. The
batch is the innermost (contiguous) dimension, so comparisons and sums run over long vectors;
sentences are sorted by length and processed in chunks cut to each chunk's longest sentences,
which avoids most padding and keeps a CPU chunk in cache.
"""

from __future__ import annotations

import sys
from typing import List

import torch

# Elements (bytes) of one E_1 tensor per chunk of sentences. On CPU about 1 MiB keeps every
# pass over E_n in (L2/L3) cache while keeping the number of chunks, hence of small-op
# dispatches, low; on a GPU fewer, larger chunks save kernel launches, and the bound only caps
# memory.
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


def _byte_planes(
    ids: torch.Tensor,
    inside: torch.Tensor,
    marker: int,
    order: torch.Tensor,
    planes: int,
    front: int = 0,
    front_marker: int = 0,
) -> torch.Tensor:
    """(B, L) ids -> (planes, front + L, B) uint8, rows in ``order``, ``marker`` past the ends.

    Plane k holds byte k of each id. Comparing uint8 is several times faster on CPU than
    comparing int16, int32 or int64 (the result is a byte too), so ids are compared plane by
    plane. Ids that fit are narrowed to int32 first: every later pass moves half the bytes.
    ``front`` positions of ``front_marker`` go before every sentence.
    """
    narrow = torch.int32 if planes <= 3 else torch.int64  # the markers fit in 3 bytes
    ids = torch.where(inside, ids.to(narrow), marker).index_select(0, order)
    # Transposing whole ids, then picking bytes, reads memory in order (faster than one
    # permute that gathers single bytes across rows).
    by_position = ids.new_full((front + ids.size(1), ids.size(0)), front_marker)
    by_position[front:] = ids.t()
    as_bytes = by_position.view(-1).view(torch.uint8).view(*by_position.shape, ids.element_size())
    if sys.byteorder == "big":
        as_bytes = as_bytes.flip(-1)  # least significant byte first
    return as_bytes[..., :planes].permute(2, 0, 1).contiguous()


def _equal_ids(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """Byte planes left (P, ..., b) and right (P, ..., b), broadcast -> bool, all planes equal."""
    equal = left[0] == right[0]
    for plane in range(1, left.size(0)):
        equal &= left[plane] == right[plane]
    return equal


def _equal_ngram_starts(left: torch.Tensor, right: torch.Tensor, max_order: int):
    """Yield ``E_n`` (Ll - n + 1, Lr - n + 1, b), n = 1..max_order, for byte planes (P, L, b).

    ``E_n[i, j]``: the n-gram starting at left position i equals the one at right position j.
    """
    unigram_equal = _equal_ids(left[:, :, None, :], right[:, None, :, :])
    equal = unigram_equal
    for shift in range(max_order):
        if shift:
            equal = equal[:-1, :-1] & unigram_equal[shift:, shift:]
        yield equal


def _equal_earlier_ngrams(padded: torch.Tensor, max_order: int):
    """Yield ``D_n`` (L, L - n + 1, b), n = 1..max_order, for planes (P, 2L - 1, b).

    ``padded`` is a sentence (the last L positions) after L - 1 positions of a marker that
    equals no id in it. ``D_n[L - 1 - d, j]``: the n-gram at j equals the one at j - d, for
    distances d = 0..L-1 (d = 0 is the n-gram itself); n-grams starting before the sentence
    contain the marker and equal nothing. Summing over the first dimension counts the
    occurrences up to and including position j: only earlier positions are compared, so no
    triangular mask is needed, and the layout is a view (no copy of the shifted sentences).
    """
    length = (padded.size(1) + 1) // 2
    # windows[:, w, j] = padded[:, w + j]: (P, L, L, b).
    windows = padded.unfold(1, length, 1).permute(0, 1, 3, 2)
    unigram_equal = _equal_ids(windows, padded[:, None, length - 1 :])
    equal = unigram_equal
    for shift in range(max_order):
        if shift:  # both n-grams extend to the right: shift the column only
            equal = equal[:, :-1] & unigram_equal[:, shift:]
        yield equal


def _matches_of_chunk(hyp: torch.Tensor, ref_padded: torch.Tensor, max_order: int) -> torch.Tensor:
    """Clipped matches; returns (max_order, b).

    Args:
        hyp: (P, Lh, b) hypothesis byte planes.
        ref_padded: (P, 2 Lr - 1, b) reference byte planes after Lr - 1 marker positions.
        max_order: the largest n-gram order.
    """
    ref_len = (ref_padded.size(1) + 1) // 2
    ref = ref_padded[:, ref_len - 1 :]
    # Counts are at most the sentence length: uint8 sums are exact (and fastest) up to 255.
    count_dtype = torch.uint8 if max(hyp.size(1), ref_len) <= 255 else torch.int32
    # Per order and ref position: occurrences of the ref n-gram in the hypothesis, and its rank
    # among equal n-grams in the reference. Columns past the last n-gram of an order keep
    # 0 < 1 and add nothing.
    in_hyp = torch.zeros(max_order, *ref.shape[1:], dtype=count_dtype, device=ref.device)
    rank = torch.ones_like(in_hyp)
    orders = zip(
        _equal_ngram_starts(hyp, ref, max_order), _equal_earlier_ngrams(ref_padded, max_order)
    )
    for shift, (hyp_ref, ref_ref) in enumerate(orders):
        if hyp_ref.numel() == 0:  # a side is shorter than this order
            break
        columns = ref_len - shift
        # Sums over the leading dimension: the fast reduction on CPU.
        torch.sum(hyp_ref.view(torch.uint8), dim=0, dtype=count_dtype, out=in_hyp[shift, :columns])
        torch.sum(ref_ref.view(torch.uint8), dim=0, dtype=count_dtype, out=rank[shift, :columns])
    return (in_hyp >= rank).sum(dim=1)


def _chunk_maxima(lengths: torch.Tensor, chunk: int) -> List[int]:
    """Longest length in each run of ``chunk`` consecutive entries of (B,) ``lengths``."""
    padded = torch.nn.functional.pad(lengths, (0, -lengths.numel() % chunk))
    return padded.view(-1, chunk).amax(dim=1).tolist()


def clipped_ngram_matches_inside(
    hyp: torch.Tensor,
    hyp_inside: torch.Tensor,
    hyp_len: torch.Tensor,
    ref: torch.Tensor,
    ref_inside: torch.Tensor,
    ref_len: torch.Tensor,
    max_order: int = 4,
) -> torch.Tensor:
    """``clipped_ngram_matches`` given the masks of the positions inside each sentence.

    Args:
        hyp, ref: (B, Lh), (B, Lr) left-aligned token ids; values outside are ignored.
        hyp_inside, ref_inside: same shapes, bool, True exactly at the first ``*_len``
            positions of each row (``kept_tokens`` returns them).
        hyp_len, ref_len: (B,) int64 lengths.
        max_order: the largest n-gram order.

    Returns:
        (B, max_order) int64 clipped matches per order.
    """
    batch = hyp.size(0)
    largest = max(_largest_id(hyp, hyp_inside), _largest_id(ref, ref_inside))
    # Two ids above every word mark the positions past each sentence's end; different for hyp
    # and ref, so padding never matches padding across sides.
    hyp_pad, ref_pad = largest + 1, largest + 2
    planes = max(1, (ref_pad.bit_length() + 7) // 8)
    # Chunks of sentences of similar length, each cut to its own longest sentences: the work
    # is sum(Lh * Lr + Lr * Lr) over chunks instead of B * max(...). Reference length first:
    # it enters both terms.
    by_length = torch.argsort(ref_len * (hyp.size(1) + 1) + hyp_len)
    # References get a front of Lr - 1 markers, for _equal_earlier_ngrams; hyp_pad equals no
    # reference id.
    front = ref.size(1) - 1
    hyp_planes = _byte_planes(hyp, hyp_inside, hyp_pad, by_length, planes)
    ref_planes = _byte_planes(ref, ref_inside, ref_pad, by_length, planes, front, hyp_pad)
    budget = _CPU_CHUNK_ELEMENTS if hyp.device.type == "cpu" else _DEVICE_CHUNK_ELEMENTS
    chunk = max(1, budget // max(1, hyp.size(1) * ref.size(1)))
    longest_hyp = _chunk_maxima(hyp_len[by_length], chunk)
    longest_ref = _chunk_maxima(ref_len[by_length], chunk)
    sorted_matches = torch.empty(max_order, batch, dtype=torch.int64, device=hyp.device)
    for index, start in enumerate(range(0, batch, chunk)):
        part = slice(start, start + chunk)
        ref_rows = slice(front - max(longest_ref[index] - 1, 0), front + longest_ref[index])
        sorted_matches[:, part] = _matches_of_chunk(
            hyp_planes[:, : longest_hyp[index], part], ref_planes[:, ref_rows, part], max_order
        )
    matches = torch.empty(batch, max_order, dtype=torch.int64, device=hyp.device)
    matches[by_length] = sorted_matches.t()
    return matches


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
    return clipped_ngram_matches_inside(
        hyp, hyp_inside, hyp_len, ref, ref_inside, ref_len, max_order
    )
