"""The student-state features s_t a teacher reads (L2T-DLF, docs/design.md §3.2).

Every feature is normalised to roughly [0, 1] so one teacher transfers across vocabularies and
training lengths:

====================  ===========================================================================
``progress``          t / T: student updates so far over the horizon the teacher was trained for,
                      clipped to [0, 1]
``train_loss``        EMA of the student's training NLL per token, divided by log C (1 = uniform)
``dev_loss``          last development-set NLL per token / log C (the train EMA until one exists)
``dev_metric``        last development metric in [0, 1] (token accuracy, BLEU / 100; 0 until known)
``lr_ratio``          current learning rate / peak learning rate
``bias``              constant 1
====================  ===========================================================================
"""

import copy
import math
from dataclasses import dataclass
from typing import Dict, Optional

import torch

STATE_FEATURES = ("progress", "train_loss", "dev_loss", "dev_metric", "lr_ratio", "bias")
EMA_DECAY = 0.9  # of the training-NLL feature, everywhere a student is tracked


class NonFiniteStateError(ValueError):
    """A student's state features are NaN or infinite (a diverged student): a teacher step
    reading them is skipped, a deployment refuses to set Phi from them."""


@dataclass
class StudentState:
    """Raw training statistics of a student; ``features`` turns them into s_t.

    Attributes:
        num_updates: t.
        horizon: T, the number of updates that ``progress`` = 1 stands for (> 0).
        train_loss: EMA of training NLL per token, in nats (None before the first update).
        dev_loss: last development NLL per token, in nats (None if never evaluated).
        dev_metric: last development metric in [0, 1] (None if never evaluated).
        lr: current learning rate.
        peak_lr: the schedule's peak learning rate (> 0).
    """

    num_updates: int
    horizon: int
    train_loss: Optional[float] = None
    dev_loss: Optional[float] = None
    dev_metric: Optional[float] = None
    lr: float = 1.0
    peak_lr: float = 1.0

    def features(self, num_classes: int) -> torch.Tensor:
        """s_t as a float32 tensor of shape (len(STATE_FEATURES),)."""
        if self.horizon <= 0:
            raise ValueError(f"horizon={self.horizon}; expected a positive number of updates")
        if self.peak_lr <= 0:
            raise ValueError(f"peak_lr={self.peak_lr}; expected a positive learning rate")
        log_c = math.log(max(num_classes, 2))
        train = log_c if self.train_loss is None else self.train_loss  # unknown: as if uniform
        dev = train if self.dev_loss is None else self.dev_loss
        values = [
            min(max(self.num_updates / self.horizon, 0.0), 1.0),
            train / log_c,
            dev / log_c,
            0.0 if self.dev_metric is None else self.dev_metric,
            self.lr / self.peak_lr,
            1.0,
        ]
        if not all(math.isfinite(v) for v in values):
            raise NonFiniteStateError(f"non-finite student state features {dict(zip(STATE_FEATURES, values))}")
        return torch.tensor(values, dtype=torch.float32)


class ExponentialAverage:
    """EMA with bias correction: the first value is returned exactly, not shrunk towards 0."""

    def __init__(self, decay: float = 0.9):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay={decay}; expected a value in [0, 1)")
        self.decay = decay
        self.value: Optional[float] = None

    def update(self, value: float) -> float:
        self.value = value if self.value is None else self.decay * self.value + (1 - self.decay) * value
        return self.value


class StudentStateTracker:
    """The one place where a student's state is tracked; every user (teacher training in
    dynloss-train and fairseq, fairseq's ``--phi-source teacher``, dynloss-train's deployment
    and online mode) reads s_t from one of these, so a feature means the same everywhere.

    Call order per update t: ``features(lr)`` (s_t, which sees the updates < t), then the
    update, then ``observe_train(nll)`` with the update's NLL per token, which also advances t.
    ``observe_dev`` records a validation result; the following updates see it.

    Args:
        horizon: T of the ``progress`` feature (updates of the whole run), > 0.
        peak_lr: the schedule's peak learning rate, > 0.
        num_classes: C, normalises losses by log C.
        decay: of the training-NLL EMA.
    """

    def __init__(self, horizon: int, peak_lr: float, num_classes: int, decay: float = EMA_DECAY):
        if not horizon or horizon <= 0:
            raise ValueError(f"horizon={horizon}; expected a positive number of updates")
        if not peak_lr > 0:
            raise ValueError(f"peak_lr={peak_lr}; expected a positive learning rate")
        self.horizon, self.peak_lr, self.num_classes = int(horizon), float(peak_lr), int(num_classes)
        self.num_updates = 0
        self.train_loss = ExponentialAverage(decay)
        self.dev_loss: Optional[float] = None
        self.dev_metric: Optional[float] = None

    def state(self, lr: float) -> StudentState:
        """The raw state before update ``num_updates`` (lr: its learning rate)."""
        return StudentState(num_updates=self.num_updates, horizon=self.horizon, train_loss=self.train_loss.value,
                            dev_loss=self.dev_loss, dev_metric=self.dev_metric, lr=lr, peak_lr=self.peak_lr)

    def features(self, lr: float) -> torch.Tensor:
        """s_t, (len(STATE_FEATURES),) float32.

        Raises:
            NonFiniteStateError: a diverged student (NaN / inf statistics).
        """
        return self.state(lr).features(self.num_classes)

    def observe_train(self, nll: float) -> None:
        """The NLL per token of the update just done; advances the update counter."""
        self.train_loss.update(float(nll))
        self.num_updates += 1

    def observe_dev(self, loss: Optional[float], metric: Optional[float]) -> None:
        """A validation result (NLL per token, metric in [0, 1]); None / NaN entries are ignored."""
        if loss is not None and not math.isnan(loss):
            self.dev_loss = float(loss)
        if metric is not None and not math.isnan(metric):
            self.dev_metric = float(metric)

    def copy(self) -> "StudentStateTracker":
        """An independent copy (an unroll continues the live student's state without changing it)."""
        return copy.deepcopy(self)

    def state_dict(self) -> Dict:
        return {"num_updates": self.num_updates, "train_loss": self.train_loss.value,
                "dev_loss": self.dev_loss, "dev_metric": self.dev_metric}

    def load_state_dict(self, state: Dict) -> None:
        self.num_updates = int(state["num_updates"])
        self.train_loss.value = state["train_loss"]
        self.dev_loss, self.dev_metric = state["dev_loss"], state["dev_metric"]
