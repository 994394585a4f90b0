"""A fixed random subset of the validation split, for a teacher's or controller's dev objective.

fairseq's batch iterator orders a split by length, so its first batches hold the shortest
sentences: a dev objective on them would reward what helps short sentences only. The subset is
drawn at random with a seed (the same sentences on every rank and after a resume), then batched
by length to waste little padding.
"""

from typing import List

import torch
from fairseq import utils


def random_dev_subset(task, split: str, num_batches: int, max_sentences: int, seed: int, device) -> List[dict]:
    """``num_batches`` fairseq batches of at most ``max_sentences`` sentences drawn at random.

    Args:
        task: a fairseq translation task (its ``split`` is loaded if needed, e.g. with
            ``--disable-validation``).
        split: the validation split's name.
        num_batches, max_sentences: the subset holds ``num_batches * max_sentences`` sentences
            (fewer if the split is smaller), >= 1 each.
        seed: of the draw.
        device: where the batches go.

    Returns:
        The collated batches, shortest sentences first.

    Raises:
        ValueError: bad sizes, or no sentence of the split fits the model.
    """
    if num_batches < 1 or max_sentences < 1:
        raise ValueError(f"dev subset of {num_batches} batches x {max_sentences} sentences; expected >= 1 each")
    if split not in task.datasets:
        task.load_dataset(split)
    dataset = task.dataset(split)
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
    order, _ = dataset.filter_indices_by_size(order.numpy(), task.max_positions())
    chosen = order[: num_batches * max_sentences].tolist()
    chosen.sort(key=lambda i: (dataset.num_tokens(i), i))
    samples = [dataset.collater([dataset[i] for i in chosen[k : k + max_sentences]])
               for k in range(0, len(chosen), max_sentences)]
    if not samples:
        raise ValueError(f"validation split {split!r} has no sentences that fit the model; the dev "
                         "objective needs some")
    return [utils.move_to_cuda(s, device=device) if device.type == "cuda" else s for s in samples]
