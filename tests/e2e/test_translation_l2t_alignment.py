"""translation_l2t: the unroll's state features, batches and learning rates refer to the same T
updates (it was off by T: batches of updates u-T+1..u with the features of u..u+T-1), and the
features are the StudentStateTracker's at each of those updates."""

import math

import fairseq  # noqa: F401  (before the plugin, so that it registers)
import torch

import fairseq_dynloss
from fairseq import options, tasks
from fairseq.dataclass.utils import convert_namespace_to_omegaconf
from fairseq.logging import metrics

T = 3
TINY_TRANSFORMER = [
    "--arch", "transformer", "--encoder-layers", "1", "--decoder-layers", "1", "--encoder-embed-dim", "16",
    "--decoder-embed-dim", "16", "--encoder-ffn-embed-dim", "32", "--decoder-ffn-embed-dim", "32",
    "--encoder-attention-heads", "2", "--decoder-attention-heads", "2", "--dropout", "0", "--share-all-embeddings",
]
fairseq_dynloss.register_with_fairseq()


class PlainOptimizer:
    """What translation_l2t's train_step / optimizer_step call on fairseq's optimiser."""

    def __init__(self, model):
        self.optimizer = torch.optim.SGD(model.parameters(), lr=0.01)

    def backward(self, loss):
        loss.backward()

    def get_lr(self):
        return self.optimizer.param_groups[0]["lr"]

    def set_lr(self, lr):
        self.optimizer.param_groups[0]["lr"] = lr

    def step(self, *args, **kwargs):
        self.optimizer.step()
        self.optimizer.zero_grad()


def test_unroll_features_and_batches_are_the_same_updates(toy_data_bin, monkeypatch):
    data = toy_data_bin / "data-bin"
    parser = options.get_training_parser()
    ns = options.parse_args_and_arch(parser, [
        str(data), "--user-dir", fairseq_dynloss.__path__[0], "--task", "translation_l2t", "--cpu",
        *TINY_TRANSFORMER, "--criterion", "dynamic_loss", "--phi-parametrisation", "bucketed",
        "--phi-buckets", "4", "--max-update", "100", "--lr", "0.002", "--teacher-mode", "online",
        "--unroll-steps", str(T), "--teacher-interval", "1"])
    cfg = convert_namespace_to_omegaconf(ns)
    task = tasks.setup_task(cfg.task)
    torch.manual_seed(0)
    model = task.build_model(cfg.model)
    criterion = task.build_criterion(cfg.criterion)
    task.load_dataset("train")
    iterator = task.get_batch_iterator(task.dataset("train"), max_sentences=4, seed=1).next_epoch_itr(shuffle=False)
    samples = [next(iterator) for _ in range(T + 1)]
    calls = []
    monkeypatch.setattr(task, "teacher_step", lambda model, params, update, optimizer: calls.append(
        (update, [group[0] for group in task.recent], torch.stack(task.recent_features).clone(),
         list(task.recent_lrs))))
    optimizer = PlainOptimizer(model)
    features_at, nlls = [], []
    lrs = [0.002 * (1 + update) for update in range(len(samples))]  # a schedule: each update its own rate
    with metrics.aggregate("train"):
        for update, sample in enumerate(samples):
            metrics.log_scalar("lr", lrs[update], weight=0)
            optimizer.set_lr(lrs[update])
            model.train()
            _, _, log = task.train_step(sample, model, criterion, optimizer, update)
            nlls.append(float(log["nll_loss"]) / sample["ntokens"])
            features_at.append(task.student_state(update).features(criterion.phi.num_classes))
            task.optimizer_step(optimizer, model, update)
    # teacher steps at updates T-1 and T, each over the last T updates
    assert [c[0] for c in calls] == [T - 1, T]
    for update, batches, features, rates in calls:
        first = update - T + 1
        assert batches == samples[first:update + 1]
        assert rates == lrs[first:update + 1]  # the twin's rates: those of the same updates
        torch.testing.assert_close(features, torch.stack(features_at[first:update + 1]))
        # by hand: progress k / 100 and the EMA (decay 0.9) of the NLL per token of the updates < k
        for row, k in zip(features, range(first, update + 1)):
            assert abs(row[0].item() - k / 100) < 1e-7
            ema = None
            for value in nlls[:k]:
                ema = value if ema is None else 0.9 * ema + 0.1 * value
            expected = 1.0 if ema is None else ema / math.log(criterion.phi.num_classes)
            assert abs(row[1].item() - expected) < 1e-5
