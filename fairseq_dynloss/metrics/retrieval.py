"""Retrieval metrics: recall@k with exact nearest neighbours (faiss when installed)."""

from __future__ import annotations

from typing import Dict, Sequence

import torch

RECALL_KS = (1, 10, 100, 1000)


def nearest_neighbours(embeddings: torch.Tensor, k: int, chunk_size: int = 1024) -> torch.Tensor:
    """Exact k nearest neighbours (squared Euclidean) of every row among the other rows.

    Uses faiss's exact ``IndexFlatL2`` when installed, else chunked torch matmuls, so memory
    stays O(chunk_size * N).

    Args:
        embeddings: (N, D).
        k: neighbours per row, k < N.

    Returns:
        (N, k) indices, nearest first, never the row itself.
    """
    n = embeddings.size(0)
    if not 0 < k < n:
        raise ValueError(f"k={k}; expected 0 < k < N={n}")
    embeddings = embeddings.detach().float()
    try:
        import faiss  # noqa: F401
    except ImportError:
        faiss = None
    if faiss is not None:
        index = faiss.IndexFlatL2(embeddings.size(1))
        data = embeddings.cpu().contiguous().numpy()
        index.add(data)
        _, found = index.search(data, k + 1)
        found = torch.from_numpy(found)
        rows = torch.arange(n)[:, None]
        # Drop the row itself wherever it appears (ties may put another point first).
        keep = found.ne(rows)
        return torch.stack([f[m][:k] for f, m in zip(found, keep)])
    squared = (embeddings * embeddings).sum(1)
    out = []
    for start in range(0, n, chunk_size):
        query = embeddings[start:start + chunk_size]
        dist = squared[start:start + chunk_size, None] - 2 * query @ embeddings.t() + squared[None]
        rows = torch.arange(query.size(0), device=dist.device)
        dist[rows, rows + start] = float("inf")
        out.append(dist.topk(k, dim=1, largest=False).indices.cpu())
    return torch.cat(out)


def recall_at_k(embeddings: torch.Tensor, labels: torch.Tensor, ks: Sequence[int] = RECALL_KS,
                chunk_size: int = 1024) -> Dict[int, float]:
    """Recall@k (Song et al. 2016): percentage of queries with at least one same-class item
    among their k nearest neighbours; every item queries all the others.

    Args:
        embeddings: (N, D).
        labels: (N,) class ids.
        ks: the k values; those >= N are skipped.

    Returns:
        ``{k: recall in percent}``.
    """
    ks = [k for k in ks if k < embeddings.size(0)]
    if not ks:
        return {}
    found = nearest_neighbours(embeddings, max(ks), chunk_size)
    labels = labels.cpu()
    hits = labels[found].eq(labels[:, None])
    return {k: 100.0 * hits[:, :k].any(1).float().mean().item() for k in ks}
