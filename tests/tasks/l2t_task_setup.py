"""An in-process ``--task translation_l2t`` on the toy corpus: task, tiny model, criterion, batches."""

import fairseq  # noqa: F401  (before the plugin, so that it registers)
import torch

import fairseq_dynloss
from fairseq import options, tasks
from fairseq.dataclass.utils import convert_namespace_to_omegaconf

fairseq_dynloss.register_with_fairseq()

TINY_TRANSFORMER = [
    "--arch", "transformer", "--encoder-layers", "1", "--decoder-layers", "1", "--encoder-embed-dim", "16",
    "--decoder-embed-dim", "16", "--encoder-ffn-embed-dim", "32", "--decoder-ffn-embed-dim", "32",
    "--encoder-attention-heads", "2", "--decoder-attention-heads", "2", "--dropout", "0", "--share-all-embeddings",
]


def parse(data, *extra):
    """The training config of ``fairseq-train DATA --task translation_l2t ... EXTRA``."""
    parser = options.get_training_parser()
    ns = options.parse_args_and_arch(parser, [
        str(data), "--user-dir", fairseq_dynloss.__path__[0], "--task", "translation_l2t", "--cpu",
        *TINY_TRANSFORMER, "--criterion", "dynamic_loss", "--max-update", "100", "--lr", "0.002",
        "--teacher-dev-batches", "2", "--teacher-dev-max-sentences", "4", "--seed", "5", *map(str, extra)])
    return convert_namespace_to_omegaconf(ns)


def build(data, *extra, model_seed=0):
    """``(task, model, criterion, cfg)``; the model in float32 with seeded weights."""
    cfg = parse(data, *extra)
    task = tasks.setup_task(cfg.task)
    torch.manual_seed(model_seed)
    model = task.build_model(cfg.model)
    criterion = task.build_criterion(cfg.criterion)
    return task, model, criterion, cfg


def train_batches(task, count, sentences=4):
    """The first ``count`` training batches of ``sentences`` sentences."""
    task.load_dataset("train")
    iterator = task.get_batch_iterator(task.dataset("train"), max_sentences=sentences,
                                       seed=1).next_epoch_itr(shuffle=False)
    return [next(iterator) for _ in range(count)]
