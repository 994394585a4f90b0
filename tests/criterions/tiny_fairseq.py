"""A tiny fairseq transformer on the toy data and its first validation batch, for criterion tests."""

import fairseq  # noqa: F401  (import before the plugin so it registers with fairseq)
import fairseq_dynloss
import torch
from fairseq import options, tasks
from fairseq.dataclass.utils import convert_namespace_to_omegaconf

from fairseq_dynloss.user_dir import USER_DIR

# Explicitly: if another test module imported the package before fairseq, its import-time
# registration did not run (idempotent).
fairseq_dynloss.register_with_fairseq()

TINY_TRANSFORMER = [
    "--arch", "transformer", "--encoder-layers", "1", "--decoder-layers", "1",
    "--encoder-embed-dim", "16", "--decoder-embed-dim", "16", "--encoder-ffn-embed-dim", "32",
    "--decoder-ffn-embed-dim", "32", "--encoder-attention-heads", "2",
    "--decoder-attention-heads", "2", "--dropout", "0", "--share-all-embeddings",
]


def build(data_bin, criterion, *criterion_args):
    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, [
        str(data_bin), "--user-dir", USER_DIR, "--task", "translation", "--cpu",
        *TINY_TRANSFORMER, "--criterion", criterion, *criterion_args])
    cfg = convert_namespace_to_omegaconf(args)
    task = tasks.setup_task(cfg.task)
    torch.manual_seed(0)
    model = task.build_model(cfg.model).eval()
    return task, model, task.build_criterion(cfg.criterion)


def first_batch(task, max_sentences=4):
    task.load_dataset("valid")
    iterator = task.get_batch_iterator(task.dataset("valid"), max_sentences=max_sentences,
                                       seed=1).next_epoch_itr(shuffle=False)
    return next(iter(iterator))
