"""ALA in the generic trainer (``controller=ala``; DESIGN 3.4): single- and multi-network.

The loop calls ``ALATrainerController.after_update(student)`` after every optimiser step. The
reward of a window of K updates is ``M = sum_{j=1..K} gamma^(K-j) M_j`` over the validation metric
``M_j`` after each update j, so every ``metric_every``-th update (1: every update, the paper's
reward) runs the student on a fixed validation subset (eval mode, one batched forward) and keeps
``M_j`` as a device tensor: no host synchronisation until the window ends. With
``metric_every = n > 1`` the sum runs over j = n, 2n, ..., K with the same weights
``gamma^(K-j)`` (a cheaper estimate; n must divide K). At the end of window t:

1. the last validation pass also gives the state (``controllers.targets``): the confusion state of
   the dynamic loss's Phi (classification), or the positive / negative distance statistics of the
   embeddings (metric-learning losses), and the features ``s_{t+1}`` of every controlled element
   (history of H earlier states, training progress, the element's current value);
2. ``WindowReward`` turns the window's metric values into ``M_t`` and the reward
   ``r = sign(M_{t-1} - M_t)`` (flipped for aucpr and recall@k) of the action taken at the end of
   window t-1 (the first window has no reward: it only sets ``M_0``);
3. that transition ``<s_t, a_t, r, s_{t+1}>`` goes into the replay memory -- in multi-network mode
   the transitions of all children, all-gathered in rank order -- and the policy takes one
   REINFORCE step on trajectories sampled from it;
4. the policy samples new actions ``a_{t+1}`` in {-beta, 0, +beta} per controlled element and the
   target moves Phi (``beta = base_beta / sqrt(P)``, then clamping).

**Multi-network.** One child per process (``torchrun``); children train independently (no gradient
averaging), each from its own seed. Policy initialisation, replay sampling and learner are seeded
alike in every process and see the same gathered transitions, so every controller takes the same
policy step and they stay identical; each child samples its own actions and moves its own Phi.

One row per window goes to ``ala_log.csv`` with the controller's time split into ``time_metric``
(per-update validation), ``time_state``, ``time_policy`` (reward, features, memory, REINFORCE
step, sampling) and ``time_phi``. Everything random has its own seeded generator and every piece of
state is in ``state_dict``, so a resumed run equals the uninterrupted one.
"""

from __future__ import annotations

import logging
import math
import os
import time
from typing import Callable, Dict, List, Optional

import torch

from fairseq_dynloss.controllers import (
    ControllerError, ElementTarget, PairPolicy, PairTarget, ReinforceLearner, ReplayMemory,
    StateHistory, Transition, WindowReward, beta_for, check_beta, check_gamma, check_window,
    higher_is_better, load_controller, pair_feature_size, save_controller,
)
from fairseq_dynloss.controllers.policy import sample_actions
from fairseq_dynloss.controllers.errors import check_positive_int
from fairseq_dynloss.metrics.classification import aucpr_one_vs_rest

from .checkpoint import map_tensors
from .registry import METRIC_ALA_LOSSES, ConfigError
from .run_log import write_csv

log = logging.getLogger("dynloss-train")

REWARD_METRICS = ("error", "loss", "aucpr")  # classification; metric learning: recall@K
CONTROLLED_PARAMETRISATIONS = ("full", "bucketed")
LOG_FILE = "ala_log.csv"
POLICY_FILE = "ala_controller.pt"
VAL_SUBSET_SEED = 0  # the same validation subset for every run and child, whatever the seed
TIMINGS = ("metric", "state", "policy", "phi")


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
    every = check_positive_int("metric_every", ctrl.metric_every)
    if window % every:
        raise ControllerError(f"metric_every={every} does not divide window K={window}; expected a divisor of K")
    if ctrl.clamp is not None:
        if len(ctrl.clamp) != 2 or not float(ctrl.clamp[0]) <= float(ctrl.clamp[1]):
            raise ControllerError(f"clamp={list(ctrl.clamp)}; expected [low, high] with low <= high")
    if isinstance(ctrl.val_subset, bool) or not isinstance(ctrl.val_subset, int) or ctrl.val_subset < 0:
        raise ControllerError(f"val_subset={ctrl.val_subset!r}; expected an integer >= 0 (0: all)")
    if not isinstance(ctrl.multi_network, bool):
        raise ControllerError(f"multi_network={ctrl.multi_network!r}; expected true or false")
    pair_feature_size(ctrl.history)  # history >= 0


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
        self.gather = gather if gather is not None else (lambda transition: [transition])
        if hasattr(objective, "phi_values"):
            self.target = ElementTarget(objective.phi_values, objective.phi_names, objective.phi_bounds,
                                        ctrl.history)
        else:
            clamp = None if ctrl.clamp is None else (float(ctrl.clamp[0]), float(ctrl.clamp[1]))
            self.target = PairTarget(objective.phi, ctrl.history, clamp)
        self.beta = beta_for(self.target.num_elements, ctrl.base_beta)
        self.feature_size = self.target.feature_size
        self._load_val_subset(val, device)
        self.batch_size = max(1, int(batch_size))

        if ctrl.policy_path:
            loaded = load_controller(os.path.expanduser(ctrl.policy_path),
                                     expected_feature_size=self.feature_size)
            self.policy = loaded.policy
            log.info("ALA: policy transferred from %s", ctrl.policy_path)
        else:
            self.policy = PairPolicy(self.feature_size, hidden=ctrl.hidden, seed=ctrl.seed)
        self.learner = ReinforceLearner(self.policy, lr=ctrl.lr, baseline_decay=ctrl.baseline_decay)
        self.memory = ReplayMemory(ctrl.replay_capacity, seed=ctrl.seed + 1)
        self.history = StateHistory(ctrl.history)
        # the window metric over the sampled updates j = n, 2n, ..., K: weights gamma^(K-j)
        self.window_reward = WindowReward(self.metric, self.window // self.metric_every,
                                          check_gamma(ctrl.gamma) ** self.metric_every)
        self.generator = torch.Generator().manual_seed(int(ctrl.seed) + 2 + 1_000_003 * self.rank)
        self.step = 0
        self.metric_values: List[torch.Tensor] = []  # M_j of the current window, on the device
        self.pending: Optional[Dict[str, torch.Tensor]] = None  # state and action of window t
        self.rows: List[Dict[str, float]] = []
        self.timings = dict.fromkeys(TIMINGS, 0.0)

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
        if self.metric == "aucpr":
            return torch.tensor(aucpr_one_vs_rest(outputs.float(), labels), device=labels.device)
        return _recall_at_k(outputs, labels, recall_k(self.metric))

    def after_update(self, student) -> Optional[Dict[str, float]]:
        """Call after every optimiser step; at the end of a window, act (returns its log row)."""
        started = time.perf_counter()
        self.step += 1
        position = (self.step - 1) % self.window + 1  # j = 1..K within the window
        if position % self.metric_every:
            return None
        raw = self._validate(student)
        with torch.no_grad():
            outputs = student.objective.predict(raw)
        self.metric_values.append(self._metric(student, raw, outputs))
        clock = self._tick("metric", started)
        if position < self.window:
            return None

        state = self.target.state(outputs, self.val_labels)
        clock = self._tick("state", clock)
        values = torch.stack(self.metric_values).tolist()  # the window's one host sync
        self.metric_values = []
        for value in values:
            r = self.window_reward.add(value)  # the last value closes the window: its reward
        progress = min(1.0, self.step / self.total_updates)
        features = self.target.features(state, self.history.matrices(state), progress)
        stats: Dict[str, float] = {}
        if self.pending is not None:  # r rewards the action taken at the end of the last window
            mine = Transition(self.pending["state"], self.pending["action"], r, features, self.rank,
                              self.memory.next_step.get(self.rank, 0))
            self.memory.extend(self.gather(mine))
            if self.ctrl.train_policy:
                stats = self.learner.update(
                    self.memory.sample_trajectories(self.ctrl.trajectories, self.ctrl.horizon))
        with torch.no_grad():  # one policy forward gives the actions and the logged entropy
            logp = torch.log_softmax(self.policy(features), dim=-1)
            actions = sample_actions(logp, self.generator).to(features.device)
            entropy = -(logp.exp() * logp).sum(-1).mean().item()
        clock = self._tick("policy", clock)
        self.target.apply(actions, self.beta)
        self.pending = {"state": features, "action": actions}
        self.history.push(state)
        self._tick("phi", clock)
        row = {
            "update": self.step, "window": self.step // self.window,
            "reward": "" if r is None else r, "metric": values[-1],
            "window_metric": self.window_reward.previous, **self.target.summary(),
            "entropy": entropy, "baseline": self.learner.baseline,
            "policy_loss": stats.get("loss", ""),
            "actions_minus": int((actions == -1).sum()), "actions_zero": int((actions == 0).sum()),
            "actions_plus": int((actions == 1).sum()),
            "controller_time": sum(self.timings.values()),
            **{f"time_{name}": self.timings[name] for name in TIMINGS},
        }
        self.timings = dict.fromkeys(TIMINGS, 0.0)
        self.rows.append(row)
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
    def write_files(self, out_dir: str) -> None:
        """``ala_log.csv`` (rewritten from all rows, so resume never duplicates) and the policy."""
        if self.rows:
            write_csv(os.path.join(out_dir, LOG_FILE), self.rows)
        if self.ctrl.save_policy:
            save_controller(os.path.join(out_dir, POLICY_FILE), self.learner, self.memory,
                            window=self.window, base_beta=float(self.ctrl.base_beta),
                            history=int(self.ctrl.history), reward_metric=self.metric,
                            controlled=self.target.description, num_elements=self.target.num_elements)

    def state_dict(self) -> Dict:
        return {
            "step": self.step, "learner": self.learner.state_dict(), "memory": self.memory.state_dict(),
            "history": self.history.state_dict(), "window_reward": self.window_reward.state_dict(),
            "generator": self.generator.get_state(), "pending": self.pending,
            "metric_values": torch.stack(self.metric_values).tolist() if self.metric_values else [],
            "rows": [dict(row) for row in self.rows], "feature_size": self.feature_size,
            "num_elements": self.target.num_elements,
        }

    def load_state_dict(self, state: Dict) -> None:
        state = map_tensors(torch.Tensor.cpu, state)  # a checkpoint loaded onto CUDA: the controller lives on CPU
        for key, mine in (("feature_size", self.feature_size), ("num_elements", self.target.num_elements)):
            if state.get(key) != mine:
                raise ControllerError(f"checkpoint controller has {key}={state.get(key)!r}; this run has {mine}")
        self.learner.load_state_dict(state["learner"])
        self.memory.load_state_dict(state["memory"])
        self.history.load_state_dict(state["history"])
        # older checkpoints hold the window's values in the reward itself and no metric_values:
        # the reward then closes the window after the remaining values, as it should
        self.window_reward.load_state_dict(state["window_reward"])
        self.generator.set_state(state["generator"])
        self.pending = state["pending"]
        device = self.val_labels.device
        self.metric_values = [torch.tensor(float(v), device=device) for v in state.get("metric_values", [])]
        self.rows = [dict(row) for row in state["rows"]]
        self.step = int(state["step"])


def steps_per_epoch(num_train: int, batch_size: int, drop_last: bool) -> int:
    """Student updates per epoch of one process / child, for ``num_train`` examples in the epoch
    order (with m-per-class batches: the examples of the complete groups)."""
    return num_train // batch_size if drop_last else math.ceil(num_train / batch_size)
