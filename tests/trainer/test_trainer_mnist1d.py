"""dynloss-train on MNIST-1D and with label noise: the step budget, noise on training labels only
(label_noise.csv), and that training and validation never read the test split."""

import inspect

import pytest
import torch
from trainer_helpers import compose_config, is_clock, without_clocks

from fairseq_dynloss.data.label_noise import (
    NoisyLabels, apply_label_noise, noise_matrix, transition_counts)
from fairseq_dynloss.trainer import loop, train
from fairseq_dynloss.trainer.checkpoint import load_checkpoint
from fairseq_dynloss.trainer.registry import ConfigError, build_splits

# 200 samples: 160 train (40 of them validation), 40 test; batches of 50 -> 3 updates an epoch
TINY = ["task=mnist1d", "model=mnist1d_mlp", "optim=adam", "optim.lr=1e-2", "task.num_samples=200",
        "task.val_size=40", "task.batch_size=50", "tensorboard=false"]


def tiny(tmp_path, *overrides):
    return compose_config(*TINY, f"data_dir={tmp_path / 'data'}", *overrides)


def test_max_steps_cuts_the_last_epoch(tmp_path):
    history = train(tiny(tmp_path, "task.max_steps=7"), str(tmp_path / "run"))
    assert [row["epoch"] for row in history] == [1, 2, 3]  # ceil(7 / 3) epochs
    state = load_checkpoint(str(tmp_path / "run" / "checkpoint_last.pt"), torch.device("cpu"))
    steps = {int(s["step"]) for s in state["optimizer"]["state"].values()}
    assert steps == {7}  # Adam counts every update: exactly the budget


@pytest.mark.parametrize("value", [0, -3, 2.5, True])
def test_bad_max_steps_is_refused(tmp_path, value):
    with pytest.raises(ConfigError, match="task.max_steps"):
        train(tiny(tmp_path, f"task.max_steps={value}"), str(tmp_path / "run"))


@pytest.mark.parametrize("task, budget", [(["task=digits"], "task.epochs=1"),
                                          (TINY[:1] + TINY[4:6], "task.max_steps=3")])
def test_noise_touches_training_labels_only_and_is_recorded(tmp_path, task, budget):
    noise = ["task.label_noise.kind=pairflip", "task.label_noise.rate=0.4", "task.label_noise.seed=3"]
    data = [f"data_dir={tmp_path / 'data'}"]
    clean = build_splits(compose_config(*task, *data).task, str(tmp_path / "data"))
    cfg = compose_config(*task, *data, *noise, budget, "progress=false", "tensorboard=false")
    noisy = build_splits(cfg.task, str(tmp_path / "data"))
    assert isinstance(noisy.train, NoisyLabels)
    expected = apply_label_noise(clean.train.labels, noise_matrix("pairflip", 0.4, 10), 3)
    assert torch.equal(noisy.train.labels, expected)
    assert torch.equal(noisy.train.clean_labels, clean.train.labels)
    assert torch.equal(noisy.val.labels, clean.val.labels)
    assert torch.equal(noisy.test.labels, clean.test.labels)
    # training batches carry the noisy labels and the unchanged inputs
    inputs, labels = noisy.train.batch(torch.arange(5))
    clean_inputs, _ = clean.train.batch(torch.arange(5))
    assert torch.equal(labels, expected[:5]) and torch.equal(inputs, clean_inputs)
    train(cfg, str(tmp_path / "run"))
    rows = (tmp_path / "run" / "label_noise.csv").read_text().splitlines()
    counts = transition_counts(clean.train.labels, expected, 10)
    assert rows[1:] == [",".join(map(str, [i] + counts[i].tolist())) for i in range(10)]


def test_clean_runs_write_no_noise_record(tmp_path):
    train(tiny(tmp_path, "task.max_steps=3"), str(tmp_path / "run"))
    assert not (tmp_path / "run" / "label_noise.csv").exists()


class GuardedTest:
    """The test split, readable only by ``evaluate`` (the per-epoch report) and never with
    augmentation; optionally with its inputs and labels replaced by garbage."""

    def __init__(self, dataset, scramble: bool):
        self.labels = dataset.labels
        self.dataset, self.scramble, self.calls = dataset, scramble, 0

    def __len__(self):
        return len(self.dataset)

    def batch(self, indices, augment=False, generator=None):
        caller = inspect.stack()[1].function
        assert caller == "evaluate" and not augment, f"test split read by {caller}"
        self.calls += 1
        inputs, labels = self.dataset.batch(indices)
        if self.scramble:
            return torch.randn_like(inputs) * 100, (labels + 3) % 10
        return inputs, labels


@pytest.mark.parametrize("method", [
    ["loss=ce"], ["loss=label_smoothing"],
    ["loss=dynamic", "loss.form=paper", "controller=ala", "controller.window=2", "controller.val_subset=40"],
    ["loss=dynamic", "loss.form=paper", "teacher=l2t", "teacher.steps=2", "teacher.unroll=2", "teacher.horizon=2",
     "teacher.dev_batches=1", "teacher.lr=0.05"],
], ids=["ce", "label_smoothing", "ala", "l2t"])
def test_training_and_validation_never_read_the_test_split(tmp_path, monkeypatch, method):
    """Test data can change nothing but the test columns: garbage test inputs and labels leave
    the weights, the validation history and the selected checkpoint exactly as they were."""
    guards = []

    def splits_with_guarded_test(task, data_dir):
        splits = build_splits(task, data_dir)
        guards.append(GuardedTest(splits.test, scramble=len(guards) == 1))
        splits.test = guards[-1]
        return splits

    monkeypatch.setattr(loop, "build_splits", splits_with_guarded_test)
    runs = []
    for name in ("plain", "scrambled"):
        cfg = tiny(tmp_path, *method, "task.max_steps=9",
                   "task.label_noise.kind=symmetric", "task.label_noise.rate=0.2")
        history = train(cfg, str(tmp_path / name))
        runs.append((history, {k: load_checkpoint(str(tmp_path / name / f"checkpoint_{k}.pt"),
                                                  torch.device("cpu")) for k in ("last", "best")}))
    assert all(guard.calls > 0 for guard in guards)
    (plain, plain_ckpt), (scrambled, scrambled_ckpt) = runs
    # everything but the test columns and the clock, nan compared as equal
    untouched = lambda row: {k: "nan" if v != v else v for k, v in row.items()
                             if not k.startswith("test_") and not is_clock(k)}
    for a, b in zip(plain, scrambled):
        assert untouched(a) == untouched(b)
        assert a["test_error"] != b["test_error"] or a["test_loss"] != b["test_loss"]
    for kind in ("last", "best"):
        assert plain_ckpt[kind]["epoch"] == scrambled_ckpt[kind]["epoch"]
        for key, value in plain_ckpt[kind]["student"].items():
            assert torch.equal(value, scrambled_ckpt[kind]["student"][key]), key


def test_a_step_budget_run_resumes_exactly(tmp_path):
    """Stopped after one epoch and resumed, a max_steps run equals the uninterrupted run."""
    full = train(tiny(tmp_path, "task.max_steps=7"), str(tmp_path / "full"))
    train(tiny(tmp_path, "task.max_steps=7", "stop_after_epoch=1"), str(tmp_path / "split"))
    resumed = train(tiny(tmp_path, "task.max_steps=7", "resume=true"), str(tmp_path / "split"))
    assert without_clocks(resumed) == without_clocks(full)
