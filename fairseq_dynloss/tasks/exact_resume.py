"""fairseq resumes exactly across epoch boundaries when the plugin is loaded.

Cause (fairseq 0.12, ``FairseqTask.get_batch_iterator``): the batches are built once, when the
epoch iterator is built, seeded with ``seed + epoch`` (length ties between sentences are broken
by that seed), and then reused for every epoch (only their order is reshuffled per epoch). An
uninterrupted run builds them at epoch 1; a run resumed at epoch e >= 2 built them with
``seed + e``, so it trained on other batches (final weights differed by up to 0.047).

Fix: when fairseq would build a reusable iterator at epoch e > 1, it is built with the batches of
epoch 1 -- those the uninterrupted run keeps -- and then set to epoch e (which epoch's shuffle
and position the checkpoint then restores as before). Iterators that fairseq rebuilds every
epoch anyway (sharded data, ``--disable-iterator-cache`` paths, ``--update-epoch-batch-itr``,
``rebuild_batches``) were exact already and are left as they are. ``install()`` patches
``FairseqTask.get_batch_iterator`` when the plugin registers with fairseq, so ``--task
translation`` runs with ``--user-dir fairseq_dynloss`` (the recipes) and the plugin's tasks,
which inherit it, all get it; tasks that override ``get_batch_iterator`` themselves do not.
"""

from __future__ import annotations

import functools

# get_batch_iterator's parameters after ``dataset``, up to and including ``epoch``
POSITIONAL_BEFORE_EPOCH = 9


def batches_of_epoch_one(get_batch_iterator):
    """Wrap a ``get_batch_iterator(self, dataset, ..., epoch=1, ...)`` as described above."""

    @functools.wraps(get_batch_iterator)
    def wrapper(self, dataset, *args, **kwargs):
        epoch = kwargs.get("epoch", 1)
        reusable = (len(args) < POSITIONAL_BEFORE_EPOCH and epoch > 1
                    and not kwargs.get("disable_iterator_cache", False)
                    and not kwargs.get("update_epoch_batch_itr", False)
                    and self.can_reuse_epoch_itr(dataset)
                    and dataset not in self.dataset_to_epoch_iter)  # a cached one is returned as is
        if not reusable:
            return get_batch_iterator(self, dataset, *args, **kwargs)
        iterator = get_batch_iterator(self, dataset, *args, **dict(kwargs, epoch=1))
        iterator.epoch = epoch  # nothing has iterated yet: the checkpoint's state loads onto it
        return iterator

    wrapper._dynloss_exact_resume = True
    return wrapper


def install() -> None:
    """Patch ``FairseqTask.get_batch_iterator`` (idempotent)."""
    from fairseq.tasks.fairseq_task import FairseqTask

    if not getattr(FairseqTask.get_batch_iterator, "_dynloss_exact_resume", False):
        FairseqTask.get_batch_iterator = batches_of_epoch_one(FairseqTask.get_batch_iterator)
