"""Clipped n-gram match counts for a batch of sentence pairs, without a loop over sentences.

For hypothesis n-gram g, BLEU counts ``min(count_hyp(g), count_ref(g))``. We get these counts
from one boolean tensor per order, ``E_n[i, j, b] = (hyp n-gram i == ref n-gram j)`` in
sentence b, built from the unigram comparison by shifted ANDs
(``E_n[i, j] = E_{n-1}[i, j] & E_1[i+n-1, j+n-1]``), so n-grams are compared exactly and never
hashed. With ``F_n`` the same tensor for the reference against itself, kept only where
``k <= j`` (row k, column j):

* column sum of ``E_n``: ``ch_j`` = occurrences in the hypothesis of ref n-gram j;
* column sum of ``F_n``: ``rank_j`` = 1 + earlier occurrences in the reference of n-gram j
  (``F_n`` is stored by distance ``j - k``, see ``_matches_of_chunk``);
* the ``count_ref(g)`` columns holding one n-gram g have ranks 1, 2, ..., count_ref(g) and all
  have ``ch_j = count_hyp(g)``, so ``sum_j [ch_j >= rank_j]`` is ``min(count_hyp, count_ref)``
  summed over g, in integers; n-grams absent from the hypothesis add 0.

The work is O(Lh * Lr) booleans per sentence and order, done as a few whole-tensor passes. The
batch is the innermost (contiguous) dimension, so comparisons and sums run over long vectors;
sentences are sorted by length and processed in chunks cut to each chunk's longest sentences,
which avoids most padding and keeps a CPU chunk in cache.
"""

from __future__ import annotations

import threading
from typing import List

import torch

# Elements (bytes) of one E_1 tensor per chunk of sentences. On CPU about 2 MiB keeps every
# pass over E_n in (L2/L3) cache while keeping the number of chunks, hence of small-op
# dispatches, low (measured: 2^20 +4%, 2^22 +2%, 2^19 +15% time); on a GPU fewer, larger
# chunks save kernel launches, and the bound only caps memory.
_CPU_CHUNK_ELEMENTS = 2**21
_DEVICE_CHUNK_ELEMENTS = 2**27

# CPU tables kept between calls, per thread. Fresh megabyte allocations come from the OS as
# untouched pages, and their page faults cost ~10% of a call even with the tables reused
# within it; on a GPU the caching allocator
# already reuses memory, so only CPU tables are kept (a few MiB).
_cpu_tables = threading.local()


def _bool_tables(size: int, device: torch.device) -> List[torch.Tensor]:
    """Two flat bool tensors of ``size`` elements on ``device`` (contents undefined)."""
    if device.type != "cpu":
        return [torch.empty(size, dtype=torch.bool, device=device) for _ in range(2)]
    tables = getattr(_cpu_tables, "tables", None)
    if tables is None or tables[0].numel() < size:
        tables = _cpu_tables.tables = [torch.empty(size, dtype=torch.bool) for _ in range(2)]
    return tables


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
    # ids * inside + marker * outside: two in-place passes, faster than masked_fill on CPU.
    ids = ids.to(narrow).mul_(inside).add_(~inside, alpha=marker)
    # One transposing copy of whole ids, then one contiguous cast per byte (a cast to uint8
    # keeps the low byte): about half the time of gathering single bytes across rows.
    by_position = ids.index_select(0, order).t().contiguous()
    result = torch.empty(planes, front + ids.size(1), ids.size(0), dtype=torch.uint8,
                         device=ids.device)
    for plane in range(planes):
        result[plane, :front] = (front_marker >> (8 * plane)) & 255
        result[plane, front:] = by_position if plane == 0 else by_position >> (8 * plane)
    return result


def _equal_ids(left: torch.Tensor, right: torch.Tensor, out: torch.Tensor, scratch: torch.Tensor):
    """Byte planes left (P, ..., b) and right (P, ..., b), broadcast -> ``out`` (bool).

    ``out`` becomes True where all planes are equal; ``scratch`` (same shape) is overwritten.
    """
    torch.eq(left[0], right[0], out=out)
    for plane in range(1, left.size(0)):
        torch.eq(left[plane], right[plane], out=scratch)
        out &= scratch
    return out


def _sum_ngram_orders(
    unigram_equal: torch.Tensor,
    scratch: torch.Tensor,
    counts: torch.Tensor,
    max_order: int,
    shift_rows: bool,
) -> None:
    """Column sums of the n-gram equality tables of orders 1..max_order, into ``counts``.

    ``E_n[i, j] = E_{n-1}[i, j] & E_1[i + n - 1, j + n - 1]`` (``shift_rows``, two sentences
    side by side) or ``E_{n-1}[i, j] & E_1[i, j + n - 1]`` (the reference's distance layout in
    ``_matches_of_chunk``, where row i means the same distance in every column). Each table is
    built in place in ``scratch``: no allocation per order (on CPU, fresh allocations' page
    faults were 15-25% of the run time).

    Args:
        unigram_equal: (R, C, b) bool ``E_1``.
        scratch: (R, C, b) bool, overwritten.
        counts: (max_order, >= C, b) uint8/int32; ``counts[n - 1, j]`` becomes the number of
            rows i with ``E_n[i, j]``, for the C - n + 1 columns of order n.
        max_order: the largest n-gram order.
        shift_rows: whether rows shift with the order too.
    """
    rows, columns = unigram_equal.shape[:2]
    current = unigram_equal
    for shift in range(max_order):
        cut_rows = rows - shift if shift_rows else rows
        if cut_rows <= 0 or columns - shift <= 0:  # a side is shorter than this order
            break
        if shift:
            later = unigram_equal[shift:, shift:] if shift_rows else unigram_equal[:, shift:]
            if shift == 1:
                current = torch.bitwise_and(
                    unigram_equal[:cut_rows, : columns - 1], later,
                    out=scratch[:cut_rows, : columns - 1],
                )
            else:
                current = current[:cut_rows, : columns - shift]
                current &= later
        # Sums over the leading dimension: the fast reduction on CPU.
        torch.sum(
            current.view(torch.uint8), dim=0, dtype=counts.dtype, out=counts[shift, : columns - shift]
        )


def _matches_of_chunk(
    hyp: torch.Tensor, ref_padded: torch.Tensor, max_order: int, buffers: List[torch.Tensor]
) -> torch.Tensor:
    """Clipped matches; returns (max_order, b).

    Args:
        hyp: (P, Lh, b) hypothesis byte planes.
        ref_padded: (P, 2 Lr - 1, b) reference byte planes after Lr - 1 marker positions.
        max_order: the largest n-gram order.
        buffers: two flat bool tensors of at least max(Lh, Lr) * Lr * b elements, overwritten.
    """
    hyp_len, batch = hyp.shape[1:]
    ref_len = (ref_padded.size(1) + 1) // 2
    if hyp_len == 0 or ref_len == 0:
        return torch.zeros(max_order, batch, dtype=torch.int64, device=hyp.device)
    ref = ref_padded[:, ref_len - 1 :]
    # Counts are at most the sentence length: uint8 sums are exact (and fastest) up to 255.
    count_dtype = torch.uint8 if max(hyp_len, ref_len) <= 255 else torch.int32
    # Per order and ref position: occurrences of the ref n-gram in the hypothesis, and its rank
    # among equal n-grams in the reference. Columns past the last n-gram of an order keep
    # 0 < 1 and add nothing.
    in_hyp = torch.zeros(max_order, ref_len, batch, dtype=count_dtype, device=hyp.device)
    rank = torch.ones_like(in_hyp)

    def tables(rows: int):
        return [buffer[: rows * ref_len * batch].view(rows, ref_len, batch) for buffer in buffers]

    equal, scratch = tables(hyp_len)
    _equal_ids(hyp[:, :, None], ref[:, None], equal, scratch)
    _sum_ngram_orders(equal, scratch, in_hyp, max_order, shift_rows=True)
    # The reference against itself by distance: windows[:, L - 1 - d, j] = ref[:, j - d]
    # (a view of the padded planes, no copy); n-grams starting before the sentence contain the
    # marker and equal nothing, and only d >= 0 is compared, so summing over d counts the
    # occurrences up to and including j without a triangular mask.
    windows = ref_padded.unfold(1, ref_len, 1).permute(0, 1, 3, 2)
    equal, scratch = tables(ref_len)
    _equal_ids(windows, ref[:, None], equal, scratch)
    _sum_ngram_orders(equal, scratch, rank, max_order, shift_rows=False)
    return torch.sum(torch.ge(in_hyp, rank).view(torch.uint8), dim=1, dtype=count_dtype)


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
    # References get a front of Lr - 1 markers, for the distance layout of _matches_of_chunk; hyp_pad equals no
    # reference id.
    front = ref.size(1) - 1
    hyp_planes = _byte_planes(hyp, hyp_inside, hyp_pad, by_length, planes)
    ref_planes = _byte_planes(ref, ref_inside, ref_pad, by_length, planes, front, hyp_pad)
    budget = _CPU_CHUNK_ELEMENTS if hyp.device.type == "cpu" else _DEVICE_CHUNK_ELEMENTS
    chunk = max(1, min(batch, budget // max(1, hyp.size(1) * ref.size(1))))
    longest_hyp = _chunk_maxima(hyp_len[by_length], chunk)
    longest_ref = _chunk_maxima(ref_len[by_length], chunk)
    # Two tables reused by every chunk and order (bool; E_n and a scratch).
    table_size = chunk * max(hyp.size(1), ref.size(1)) * ref.size(1)
    buffers = _bool_tables(table_size, hyp.device)
    sorted_matches = torch.empty(max_order, batch, dtype=torch.int64, device=hyp.device)
    for index, start in enumerate(range(0, batch, chunk)):
        part = slice(start, start + chunk)
        ref_rows = slice(front - max(longest_ref[index] - 1, 0), front + longest_ref[index])
        sorted_matches[:, part] = _matches_of_chunk(
            hyp_planes[:, : longest_hyp[index], part], ref_planes[:, ref_rows, part], max_order,
            buffers,
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
