"""ALA in the generic trainer (``controller=ala``; docs/design.md §3.4): single- and multi-network.

The loop calls ``ALATrainerController.after_update(student)`` after every optimiser step. The
reward of a window of K updates is ``M = sum_{j=1..K} gamma^(K-j) M_j`` over the validation metric
``M_j`` after each update j, so every ``metric_every``-th update (1: every update, the paper's
reward) runs the student on a fixed validation subset (eval mode, one batched forward) and keeps
``M_j`` as a device tensor: no host synchronisation until the window ends. With
``metric_every = n > 1`` the sum runs over j = n, 2n, ..., K with the same weights
``gamma^(K-j)`` (a cheaper estimate; n must divide K). At the end of a window the last validation
pass also gives the state (``controllers.targets``: the confusion state of the dynamic loss's Phi,
or the positive / negative distance statistics of metric-learning losses), and the window's values
and state go to the shared window controller (``controllers.window``: reward, transition,
REINFORCE step, actions on Phi).

**Multi-network.** One child per process (``torchrun``); children train independently (no gradient
averaging), each from its own seed. Policy initialisation, replay sampling and learner are seeded
alike in every process and see the same gathered transitions, so every controller takes the same
policy step and they stay identical; each child samples its own actions and moves its own Phi.

One row per window goes to ``ala_log.csv`` with the controller's time split into ``time_metric``
(per-update validation), ``time_state``, ``time_policy`` (reward, features, REINFORCE step,
sampling, Phi update). Everything random has its own seeded generator and every piece of state is
in ``state_dict``, so a resumed run equals the uninterrupted one.
"""

from __future__ import annotations

import logging
import math
import os
import time
from typing import Callable, Dict, List, Optional

import torch

from fairseq_dynloss.controllers import (
    CREDITS, PRIORS, STATE_SOURCES, ControllerError, ElementTarget, PairTarget, Transition, WindowController,
    check_beta, check_gamma, check_window, class_means, higher_is_better, load_controller, measures_metric,
    pair_feature_size, prior_policy, sampled_window,
)
from fairseq_dynloss.controllers.errors import check_number, check_positive_int
from fairseq_dynloss.metrics.classification import aucpr_one_vs_rest

from .checkpoint import map_tensors
from .registry import METRIC_ALA_LOSSES, ConfigError

log = logging.getLogger("dynloss-train")

REWARD_METRICS = ("error", "loss", "expected_accuracy", "aucpr")  # classification; metric learning: recall@K
CLASS_METRICS = ("error", "loss", "expected_accuracy")  # those with a per-class mean (credit=classes)
CONTROLLED_PARAMETRISATIONS = ("full", "bucketed")
LOG_FILE = "ala_log.csv"
POLICY_FILE = "ala_controller.pt"
AUTO_CLAMP_PAPER = (-0.1, 0.1)  # clamp=auto under form=paper (form=prob: the logit box, targets.py)
VAL_SUBSET_SEED = 0  # the same validation subset for every run and child, whatever the seed
TIMINGS = ("metric", "state", "policy")
POLICY_SAVE_INTERVAL_S = 30.0  # ala_controller.pt between the first write and the end of training


def recall_k(metric: str) -> Optional[int]:
    """K of ``recall@K`` (an integer >= 1), else None."""
    name, _, k = str(metric).partition("@")
    return int(k) if name == "recall" and k.isdigit() and int(k) >= 1 else None


def check_ala_config(ctrl, loss) -> None:
    """Validate ``controller=ala`` settings before anything is written (clear errors).

    Raises ConfigError for a loss ALA cannot control, ControllerError for bad controller values.
    """
    metric_learning = loss.name in METRIC_ALA_LOSSES
    if not metric_learning and (loss.name != "dynamic"
                                or loss.get("parametrisation") not in CONTROLLED_PARAMETRISATIONS):
        what = loss.name if loss.name != "dynamic" else f"dynamic with parametrisation={loss.parametrisation}"
        raise ConfigError(
            f"controller=ala acts on the Phi of the dynamic loss or of a metric-learning ALA loss; "
            f"got loss={what}. Use loss=dynamic with loss.parametrisation in "
            f"{list(CONTROLLED_PARAMETRISATIONS)}, or loss in {list(METRIC_ALA_LOSSES)}"
        )
    window = check_window(ctrl.window)
    check_gamma(ctrl.gamma)
    check_beta(ctrl.base_beta)
    higher_is_better(ctrl.reward_metric)  # unknown names: ControllerError listing the known ones
    if metric_learning and recall_k(ctrl.reward_metric) is None:
        raise ControllerError(
            f"reward_metric={ctrl.reward_metric!r} is not available for metric learning; expected "
            "recall@K with an integer K >= 1 (e.g. controller.reward_metric=recall@1)"
        )
    if not metric_learning and ctrl.reward_metric not in REWARD_METRICS:
        raise ControllerError(
            f"reward_metric={ctrl.reward_metric!r} is not available for classification in this "
            f"trainer; expected one of {list(REWARD_METRICS)}"
        )
    sampled_window(window, ctrl.metric_every, ctrl.gamma)
    if ctrl.clamp is not None and ctrl.clamp != "auto":
        if len(ctrl.clamp) != 2 or not float(ctrl.clamp[0]) <= float(ctrl.clamp[1]):
            raise ControllerError(f"clamp={list(ctrl.clamp)}; expected [low, high] with low <= high")
    if isinstance(ctrl.val_subset, bool) or not isinstance(ctrl.val_subset, int) or ctrl.val_subset < 0:
        raise ControllerError(f"val_subset={ctrl.val_subset!r}; expected an integer >= 0 (0: all)")
    for flag in ("multi_network", "diagonal", "train_policy"):
        if not isinstance(ctrl[flag], bool):
            raise ControllerError(f"{flag}={ctrl[flag]!r}; expected true or false")
    if ctrl.state not in STATE_SOURCES:
        raise ControllerError(f"controller.state={ctrl.state!r}; expected one of {list(STATE_SOURCES)}")
    if ctrl.credit not in CREDITS:
        raise ControllerError(f"controller.credit={ctrl.credit!r}; expected one of {list(CREDITS)}")
    if ctrl.credit == "classes" and (metric_learning or loss.get("parametrisation") != "full"):
        raise ControllerError("controller.credit=classes rewards the class pairs of a full Phi; expected "
                              "loss=dynamic with loss.parametrisation=full (or controller.credit=window)")
    if ctrl.credit == "classes" and ctrl.reward_metric not in CLASS_METRICS:
        raise ControllerError(f"controller.credit=classes needs a reward metric with a per-class mean, one "
                              f"of {list(CLASS_METRICS)}; got reward_metric={ctrl.reward_metric!r}")
    if ctrl.diagonal and (metric_learning or loss.get("parametrisation") != "full"):
        raise ControllerError("controller.diagonal=true controls the diagonal of a full Phi; expected "
                              "loss=dynamic with loss.parametrisation=full")
    pair_feature_size(ctrl.history)  # history >= 0
    if ctrl.policy_prior not in PRIORS:
        raise ControllerError(f"policy_prior={ctrl.policy_prior!r}; expected one of {list(PRIORS)}")
    if ctrl.policy_prior != "none" and metric_learning:
        raise ControllerError(f"policy_prior={ctrl.policy_prior!r} reads the confusion features of a "
                              "classification Phi; metric-learning losses start from policy_prior=none")
    if ctrl.policy_prior != "none" and ctrl.policy_path:
        raise ControllerError("controller.policy_path and controller.policy_prior both set the starting "
                              "policy; expected one of them (policy_prior=none with a policy_path)")
    check_number("entropy_bonus", ctrl.entropy_bonus, 0.0)
    check_number("baseline_decay", ctrl.baseline_decay, 0.0, 1.0, high_open=True)
    check_number("reward_average", ctrl.reward_average, 0.0, 1.0, high_open=True)
    check_positive_int("hold", ctrl.hold)
    if ctrl.hold > 1 and ctrl.reward_average:
        raise ControllerError(f"controller.hold={ctrl.hold} rewards a decision against the metric at the "
                              f"last decision; controller.reward_average={ctrl.reward_average} expected 0")
    check_positive_int("replay_capacity", ctrl.replay_capacity, 0)
    check_positive_int("replay_batch", ctrl.replay_batch)


def check_ala_world(ctrl, world_size: int) -> None:
    """More than one process runs ALA only as multi-network ALA (one child per process)."""
    if world_size > 1 and not ctrl.multi_network:
        raise ConfigError(
            f"controller=ala with {world_size} processes needs controller.multi_network=true (one "
            "child model per process sharing the controller); data-parallel training of a single "
            "ALA child is not implemented"
        )


def _recall_at_k(embeddings: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    """recall@k in percent as a device tensor (``metrics.retrieval.recall_at_k``'s torch path)."""
    embeddings = embeddings.float()
    squared = (embeddings * embeddings).sum(1)
    dist = squared[:, None] - 2 * embeddings @ embeddings.t() + squared[None]
    dist.fill_diagonal_(float("inf"))
    found = dist.topk(k, dim=1, largest=False).indices
    return 100.0 * labels[found].eq(labels[:, None]).any(1).float().mean()


class ALATrainerController:
    """The ALA controller of one child (see the module docstring).

    Args:
        ctrl: the ``controller`` config section (``conf/controller/ala.yaml``).
        objective: the child's objective: a ``DynamicObjective`` (its Phi) or a metric-learning
            ALA objective (its ``phi_values``), moved in place.
        val: the validation dataset (``batch(indices)``).
        total_updates: student updates of the whole run (training progress = step / total).
        device: where the student lives.
        batch_size: the most validation examples per forward.
        rank: this child's id (its process rank in multi-network ALA).
        gather: multi-network: maps this child's transition to every child's, in rank order.
    """

    def __init__(self, ctrl, objective, val, total_updates: int, device: torch.device, batch_size: int,
                 rank: int = 0, gather: Optional[Callable[[Transition], List[Transition]]] = None):
        self.ctrl = ctrl
        self.window = check_window(ctrl.window)
        self.metric_every = check_positive_int("metric_every", ctrl.metric_every)
        self.metric = ctrl.reward_metric
        self.total_updates = max(1, int(total_updates))
        self.rank = int(rank)
        if hasattr(objective, "phi_values"):
            target = ElementTarget(objective.phi_values, objective.phi_names, objective.phi_bounds, ctrl.history)
        else:
            form = str(getattr(objective, "form", "paper"))
            clamp = ctrl.clamp if ctrl.clamp != "auto" else (None if form == "prob" else AUTO_CLAMP_PAPER)
            clamp = None if clamp is None else (float(clamp[0]), float(clamp[1]))
            target = PairTarget(objective.phi, ctrl.history, clamp, diagonal=bool(ctrl.diagonal), form=form,
                                logit_init=float(ctrl.logit_init), logit_max=float(ctrl.logit_max))
        self.target = target
        self._load_val_subset(val, device)
        self.batch_size = max(1, int(batch_size))
        policy = None
        if ctrl.policy_path:
            policy = load_controller(os.path.expanduser(ctrl.policy_path),
                                     expected_feature_size=target.feature_size).policy
            log.info("ALA: policy transferred from %s", ctrl.policy_path)
        elif ctrl.policy_prior != "none":
            policy = prior_policy(target.feature_size, hidden=ctrl.hidden, prior=ctrl.policy_prior,
                                  seed=int(ctrl.seed))
        # the window metric over the sampled updates j = n, 2n, ..., K: weights gamma^(K-j)
        window, gamma = sampled_window(self.window, self.metric_every, ctrl.gamma)
        self.controller = WindowController(
            target, metric=self.metric, window=window, gamma=gamma, base_beta=ctrl.base_beta, seed=int(ctrl.seed),
            history=ctrl.history, hidden=ctrl.hidden, lr=ctrl.lr, baseline_decay=ctrl.baseline_decay,
            entropy_bonus=ctrl.entropy_bonus, replay_capacity=ctrl.replay_capacity,
            replay_batch=ctrl.replay_batch, train_policy=ctrl.train_policy, policy=policy,
            state_source=ctrl.state, rank=self.rank, gather=gather,
            reward_average=ctrl.reward_average, credit=ctrl.credit, hold=ctrl.hold)
        self.feature_size = target.feature_size
        self.step = 0
        self.metric_values: List[torch.Tensor] = []  # M_j of the current window, on the device
        self.timings = dict.fromkeys(TIMINGS, 0.0)
        self.policy_saved: Optional[float] = None  # time.monotonic() of the last ala_controller.pt

    @property
    def rows(self) -> List[Dict]:
        return self.controller.rows

    def _load_val_subset(self, val, device: torch.device) -> None:
        if val is None or len(val) == 0:
            raise ConfigError("controller=ala needs a validation split (task.val_size > 0, or "
                              "task.val_classes > 0 for sop)")
        n = len(val) if self.ctrl.val_subset == 0 else min(self.ctrl.val_subset, len(val))
        indices = torch.arange(n)
        if n < len(val):  # a fixed random subset: a prefix could hold only a few classes
            generator = torch.Generator().manual_seed(VAL_SUBSET_SEED)
            indices = torch.randperm(len(val), generator=generator)[:n].sort().values
        images, labels = val.batch(indices)
        self.val_images, self.val_labels = images.to(device), labels.to(device)
        k = recall_k(self.metric)
        if k is not None and k >= n:
            raise ControllerError(f"reward_metric={self.metric} needs more than {k} validation examples; "
                                  f"the validation subset has {n} (controller.val_subset)")
        if isinstance(self.target, ElementTarget):
            counts = torch.bincount(labels)
            if int((counts > 0).sum()) < 2 or int(counts.max()) < 2:
                raise ControllerError(
                    f"the validation subset ({n} examples) needs two classes and a class with two "
                    "examples for positive and negative distances; raise controller.val_subset"
                )

    # -- per update ---------------------------------------------------------------------------
    @torch.no_grad()
    def _validate(self, student):
        """Network outputs on the validation subset (one forward per ``batch_size`` examples)."""
        was_training = student.training
        student.eval()
        raw = [student.net(images) for images in self.val_images.split(self.batch_size)]
        student.train(was_training)
        return raw[0] if len(raw) == 1 else torch.cat(raw)

    @torch.no_grad()
    def _metric(self, student, raw: torch.Tensor, outputs: torch.Tensor) -> torch.Tensor:
        """The reward metric as a 0-dim tensor (no host sync, except aucpr: scikit-learn)."""
        labels = self.val_labels
        if self.metric == "error":
            return 100.0 * outputs.argmax(1).ne(labels).float().mean()
        if self.metric == "loss":
            return student.objective.eval_loss(raw, labels).detach().float()
        if self.metric == "expected_accuracy":  # mean p(y | x): the smooth version of the accuracy
            return 100.0 * torch.softmax(outputs.float(), 1).gather(1, labels.unsqueeze(1)).mean()
        if self.metric == "aucpr":
            return torch.tensor(aucpr_one_vs_rest(outputs.float(), labels), device=labels.device)
        return _recall_at_k(outputs, labels, recall_k(self.metric))

    @torch.no_grad()
    def _class_metric(self, outputs: torch.Tensor) -> Optional[torch.Tensor]:
        """Under credit=classes, the reward metric's mean over each class's validation examples
        (C,) (``CLASS_METRICS``; the per-example terms of ``_metric``), else None."""
        if self.controller.class_credit is None:
            return None
        labels, outputs = self.val_labels, outputs.float()
        if self.metric == "error":
            values = 100.0 * outputs.argmax(1).ne(labels).float()
        elif self.metric == "loss":
            values = torch.nn.functional.cross_entropy(outputs, labels, reduction="none")
        else:  # expected_accuracy
            values = 100.0 * torch.softmax(outputs, 1).gather(1, labels.unsqueeze(1)).squeeze(1)
        return class_means(values, labels, outputs.shape[1])

    def after_update(self, student) -> Optional[Dict[str, float]]:
        """Call after every optimiser step; at the end of a window, act (returns its log row)."""
        started = time.perf_counter()
        self.step += 1
        if not measures_metric(self.step, self.metric_every):
            return None
        raw = self._validate(student)
        with torch.no_grad():
            outputs = student.objective.predict(raw)
        self.metric_values.append(self._metric(student, raw, outputs))
        clock = self._tick("metric", started)
        if self.step % self.window:  # not the window's last update
            return None

        state = self.target.state(outputs, self.val_labels)
        class_metric = self._class_metric(outputs)
        clock = self._tick("state", clock)
        values = torch.stack(self.metric_values).tolist()  # the window's one host sync
        self.metric_values = []
        for value in values[:-1]:
            self.controller.observe(value)
        progress = min(1.0, self.step / self.total_updates)
        row = self.controller.observe(values[-1], state, progress, self.step, class_metric=class_metric)
        self._tick("policy", clock)
        # the row (kept by the controller) gains this window's times
        row["controller_time"] = sum(self.timings.values())
        row.update({f"time_{name}": self.timings[name] for name in TIMINGS})
        self.timings = dict.fromkeys(TIMINGS, 0.0)
        return row

    def _tick(self, phase: str, since: float) -> float:
        now = time.perf_counter()
        self.timings[phase] += now - since
        return now

    def epoch_summary(self, since_row: int) -> Dict[str, float]:
        """Columns for metrics.csv: the controlled values and the mean reward of this epoch's windows."""
        rewards = [row["reward"] for row in self.rows[since_row:] if row["reward"] != ""]
        return {**self.target.summary(),
                "ala_mean_reward": sum(rewards) / len(rewards) if rewards else float("nan")}

    # -- files and checkpoints ----------------------------------------------------------------
    def write_files(self, out_dir: str, final: bool = False) -> None:
        """``ala_log.csv`` (every call) and ``ala_controller.pt``: on the first call, after the
        run's last update (``final``: the trainer knows it; a step count does not, because
        ``task.max_steps`` cuts the last epoch short of ``total_updates``), and otherwise at most
        every ``POLICY_SAVE_INTERVAL_S`` seconds.

        The trainer calls this every epoch; an fsynced policy file cost 15-25 ms, half a short
        MNIST-1D epoch's updates. The file is for policy transfer; resume reads the checkpoint.
        """
        now = time.monotonic()
        due = (final or self.policy_saved is None
               or now - self.policy_saved >= POLICY_SAVE_INTERVAL_S)
        save = bool(self.ctrl.save_policy) and due
        self.controller.write_files(out_dir, save_policy=save,
                                    base_beta=float(self.ctrl.base_beta), history=int(self.ctrl.history))
        if save:
            self.policy_saved = now

    def state_dict(self) -> Dict:
        return {"step": self.step, "controller": self.controller.state_dict(),
                "metric_values": torch.stack(self.metric_values).tolist() if self.metric_values else []}

    def load_state_dict(self, state: Dict) -> None:
        state = map_tensors(torch.Tensor.cpu, state)  # a checkpoint loaded onto CUDA: the controller lives on CPU
        if "controller" not in state:
            raise ControllerError("checkpoint ALA controller state predates the window controller "
                                  "(fairseq_dynloss 'controllers/window.py'); it cannot be resumed")
        self.controller.load_state_dict(state["controller"])
        device = self.val_labels.device
        self.metric_values = [torch.tensor(float(v), device=device) for v in state["metric_values"]]
        self.step = int(state["step"])


def steps_per_epoch(num_train: int, batch_size: int, drop_last: bool) -> int:
    """Student updates per epoch of one process / child, for ``num_train`` examples in the epoch
    order (with m-per-class batches: the examples of the complete groups)."""
    return num_train // batch_size if drop_last else math.ceil(num_train / batch_size)
