"""Token-id sequences as sentences: drop padding and end-of-sentence markers.

fairseq batches are padded (right-padded targets and hypotheses, left-padded sources) and carry
``eos``; BLEU must see only the words. Both metrics and expected metrics go through
``strip_special`` so that "tokens equal to pad are not part of the sentence" means the same
everywhere.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch


def check_token_matrix(name: str, tokens: torch.Tensor) -> None:
    """Raise ValueError unless ``tokens`` is a 2-D integer tensor.

    Args:
        name: the argument name, for the message.
        tokens: the tensor to check.
    """
    if not isinstance(tokens, torch.Tensor):
        raise ValueError(f"{name} is a {type(tokens).__name__}; expected a torch.Tensor")
    if tokens.dim() != 2:
        raise ValueError(f"{name} has shape {tuple(tokens.shape)}; expected (batch, length)")
    if tokens.dtype.is_floating_point or tokens.dtype.is_complex or tokens.dtype == torch.bool:
        raise ValueError(f"{name} has dtype {tokens.dtype}; expected an integer dtype")


def kept_tokens(
    tokens: torch.Tensor, pad: int, eos: Optional[int] = None
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Left-align the tokens that are neither ``pad`` nor ``eos``, without overwriting the rest.

    ``strip_special`` without its final fill: the n-gram matcher overwrites the positions past
    each sentence's end with its own markers, so filling them with ``pad`` first would be a
    wasted pass over the batch.

    Args:
        tokens: (N, L) integer token ids.
        pad: padding id; these tokens are not part of the sentence.
        eos: optional end-of-sentence id, removed as well.

    Returns:
        ``(tokens, keep, lengths)``: tokens (N, L) with each row's kept tokens first, in order
        (the input itself when already left-aligned); keep (N, L) bool, True exactly at the
        first ``lengths`` positions of each row; lengths (N,) int64.
    """
    check_token_matrix("tokens", tokens)
    keep = tokens != pad
    if eos is not None:
        keep &= tokens != eos
    lengths = keep.view(torch.uint8).sum(dim=1, dtype=torch.int64)
    # Right-padded rows (fairseq targets and hypotheses) are already left-aligned: skip the sort.
    # (A uint8 max is several times faster than Tensor.any on CPU.)
    flags = keep.view(torch.uint8)
    if keep[:, 1:].numel() and bool(torch.gt(flags[:, 1:], flags[:, :-1]).view(torch.uint8).max()):
        order = torch.argsort((~keep).to(torch.uint8), dim=1, stable=True)
        tokens = tokens.gather(1, order)
        keep = keep.gather(1, order)
    return tokens, keep, lengths


def strip_special(
    tokens: torch.Tensor, pad: int, eos: Optional[int] = None
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Remove ``pad`` (and ``eos``) tokens wherever they are and left-align what remains.

    Args:
        tokens: (N, L) integer token ids.
        pad: padding id; these tokens are not part of the sentence.
        eos: optional end-of-sentence id, removed as well.

    Returns:
        ``(words, lengths)``: words (N, L), each row's kept tokens in their original order
        followed by ``pad``; lengths (N,) int64, the number of kept tokens.
    """
    tokens, keep, lengths = kept_tokens(tokens, pad, eos)
    return torch.where(keep, tokens, pad), lengths
