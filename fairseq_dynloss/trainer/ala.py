"""Single-network ALA in the generic trainer (``controller=ala``; DESIGN 3.4).

The loop calls ``ALATrainerController.after_update(student)`` after every optimiser step. Each
call measures the reward metric on a fixed validation subset (model in eval mode, then back to
train mode). Every ``window`` (K) updates, i.e. at the end of window t:

1. the same validation pass gives the confusion state ``C`` (``ConfusionAccumulator``; G x G over
   the buckets of a bucketed Phi) and the features ``s_{t+1}`` of every controlled pair
   (``pair_features``: ``[C_ij, C_ji]``, H earlier states, training progress, ``Phi(i, j)``);
2. ``WindowReward`` turns the K per-update metric values into ``M_t = sum_j gamma^(K-j) M_j`` and
   the reward ``r = sign(M_{t-1} - M_t)`` (flipped for AUCPR) of the action taken at the end of
   window t-1 (the first window has no reward: it only sets ``M_0``);
3. that transition ``<s_t, a_t, r, s_{t+1}>`` goes into the replay memory and the policy takes one
   REINFORCE step on trajectories sampled from it;
4. the policy samples new actions ``a_{t+1}`` in {-beta, 0, +beta} per controlled entry from
   ``s_{t+1}`` and ``apply_actions`` moves Phi (``beta = base_beta / sqrt(P)``, optional clamp).

One row per window goes to ``ala_log.csv``. Everything random has its own seeded generator (policy
init, action sampling, replay sampling) and every piece of state is in ``state_dict``, so a
resumed run equals the uninterrupted one. Multi-network ALA (several children sharing the
controller) is not implemented here.
"""

from __future__ import annotations

import logging
import math
import os
import time
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F

from fairseq_dynloss.controllers import (
    ConfusionAccumulator, ControllerError, PairPolicy, ReinforceLearner, ReplayMemory,
    StateHistory, WindowReward, apply_actions, beta_for, check_beta, check_gamma, check_window,
    controlled_pairs, controlled_tensor, higher_is_better, load_controller, pair_feature_size,
    pair_features, save_controller,
)
from fairseq_dynloss.metrics.classification import aucpr_one_vs_rest, error_rate

from .registry import ConfigError
from .run_log import write_csv

log = logging.getLogger("dynloss-train")

REWARD_METRICS = ("error", "loss", "aucpr")
CONTROLLED_PARAMETRISATIONS = ("full", "bucketed")
LOG_FILE = "ala_log.csv"
POLICY_FILE = "ala_controller.pt"


def check_ala_config(ctrl, loss) -> None:
    """Validate ``controller=ala`` settings before anything is written (clear errors).

    Raises ConfigError for a loss ALA cannot control, ControllerError for bad controller values.
    """
    if loss.name != "dynamic" or loss.get("parametrisation") not in CONTROLLED_PARAMETRISATIONS:
        what = loss.name if loss.name != "dynamic" else f"dynamic with parametrisation={loss.parametrisation}"
        raise ConfigError(
            f"controller=ala acts on the Phi of the dynamic loss; got loss={what}. Use loss=dynamic "
            f"with loss.parametrisation in {list(CONTROLLED_PARAMETRISATIONS)}"
        )
    check_window(ctrl.window)
    check_gamma(ctrl.gamma)
    check_beta(ctrl.base_beta)
    higher_is_better(ctrl.reward_metric)  # unknown names: ControllerError listing the known ones
    if ctrl.reward_metric not in REWARD_METRICS:
        raise ControllerError(
            f"reward_metric={ctrl.reward_metric!r} is not available for classification in this "
            f"trainer; expected one of {list(REWARD_METRICS)}"
        )
    if ctrl.clamp is not None:
        if len(ctrl.clamp) != 2 or not float(ctrl.clamp[0]) <= float(ctrl.clamp[1]):
            raise ControllerError(f"clamp={list(ctrl.clamp)}; expected [low, high] with low <= high")
    if isinstance(ctrl.val_subset, bool) or not isinstance(ctrl.val_subset, int) or ctrl.val_subset < 0:
        raise ControllerError(f"val_subset={ctrl.val_subset!r}; expected an integer >= 0 (0: all)")
    pair_feature_size(ctrl.history)  # history >= 0


class ALATrainerController:
    """Single-network ALA controller of one ``DynamicObjective``'s Phi (see the module docstring).

    Args:
        ctrl: the ``controller`` config section (``conf/controller/ala.yaml``).
        phi: the objective's ``FullPhi`` / ``BucketedPhi`` (moved in place).
        val: the validation dataset (``batch(indices)``).
        total_updates: student updates of the whole run (training progress = step / total).
        device: where the student lives.
        batch_size: evaluation batch size.
    """

    def __init__(self, ctrl, phi, val, total_updates: int, device: torch.device, batch_size: int):
        self.ctrl = ctrl
        self.phi = phi
        self.window = check_window(ctrl.window)
        self.metric = ctrl.reward_metric
        self.total_updates = max(1, int(total_updates))
        self.clamp = None if ctrl.clamp is None else (float(ctrl.clamp[0]), float(ctrl.clamp[1]))
        self.bucketed = phi.parametrisation == "bucketed"
        self.num_classes = phi.num_classes
        buckets = phi.bucket_of.cpu() if self.bucketed else None
        self.size = phi.num_buckets if self.bucketed else self.num_classes
        self.buckets = buckets
        # full: Phi[i, j], i != j; bucketed: every B[g, h] (B[g, g] sets within-bucket entries)
        self.pairs = controlled_pairs(self.size, include_diagonal=self.bucketed)
        self.beta = beta_for(self.pairs.shape[0], ctrl.base_beta)
        self.feature_size = pair_feature_size(ctrl.history)

        if val is None or len(val) == 0:
            raise ConfigError("controller=ala needs a validation split (task.val_size > 0)")
        n = len(val) if ctrl.val_subset == 0 else min(ctrl.val_subset, len(val))
        self.val_batches = []
        for chunk in torch.arange(n).split(batch_size):
            images, target = val.batch(chunk)
            self.val_batches.append((images.to(device), target.to(device)))

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
        self.window_reward = WindowReward(self.metric, self.window, ctrl.gamma)
        self.generator = torch.Generator().manual_seed(int(ctrl.seed) + 2)
        self.step = 0
        self.pending: Optional[Dict[str, torch.Tensor]] = None  # state and action of window t
        self.rows: List[Dict[str, float]] = []
        self.overhead = 0.0

    # -- per update ---------------------------------------------------------------------------
    @torch.no_grad()
    def _validate(self, student, confusion: bool):
        """The reward metric on the validation subset (and the confusion state when asked)."""
        was_training = student.training
        student.eval()
        accumulator = ConfusionAccumulator(self.num_classes, self.buckets) if confusion else None
        outputs, labels, loss_sum = [], [], 0.0
        for images, target in self.val_batches:
            raw = student.net(images)
            logits = student.objective.predict(raw).float()
            if self.metric == "loss":
                loss_sum += student.objective.eval_loss(raw, target).item() * target.numel()
            if accumulator is not None:
                accumulator.update(F.log_softmax(logits, dim=1), target)
            outputs.append(logits)
            labels.append(target)
        student.train(was_training)
        outputs, labels = torch.cat(outputs), torch.cat(labels)
        if self.metric == "error":
            value = error_rate(outputs, labels)
        elif self.metric == "aucpr":
            value = aucpr_one_vs_rest(outputs, labels)
        else:
            value = loss_sum / labels.numel()
        state = accumulator.compute().cpu() if accumulator is not None else None
        return value, state

    def after_update(self, student) -> Optional[Dict[str, float]]:
        """Call after every optimiser step; at the end of a window, act (returns its log row)."""
        started = time.perf_counter()
        self.step += 1
        end = self.step % self.window == 0
        value, C = self._validate(student, confusion=end)
        r = self.window_reward.add(value)
        if not end:
            self.overhead += time.perf_counter() - started
            return None
        progress = min(1.0, self.step / self.total_updates)
        values = controlled_tensor(self.phi).detach().cpu()
        features = pair_features(C, values, self.history.matrices(C), progress, self.pairs)
        stats: Dict[str, float] = {}
        if self.pending is not None:  # r rewards the action taken at the end of the last window
            self.memory.add(self.pending["state"], self.pending["action"], r, next_state=features)
            if self.ctrl.train_policy:
                stats = self.learner.update(
                    self.memory.sample_trajectories(self.ctrl.trajectories, self.ctrl.horizon))
        with torch.no_grad():
            actions, _ = self.policy.act(features, generator=self.generator)
            entropy = self.policy.entropy(features).item()
        apply_actions(self.phi, self.pairs, actions, self.beta, self.clamp)
        self.pending = {"state": features, "action": actions}
        self.history.push(C)
        self.overhead += time.perf_counter() - started
        row = {
            "update": self.step, "window": self.step // self.window,
            "reward": "" if r is None else r, "metric": value,
            "window_metric": self.window_reward.previous,
            "phi_offdiag_mean_abs": self.offdiag_mean_abs(),
            "entropy": entropy, "baseline": self.learner.baseline,
            "policy_loss": stats.get("loss", ""),
            "actions_minus": int((actions == -1).sum()), "actions_zero": int((actions == 0).sum()),
            "actions_plus": int((actions == 1).sum()), "controller_time": self.overhead,
        }
        self.overhead = 0.0
        self.rows.append(row)
        return row

    def offdiag_mean_abs(self) -> float:
        """Mean |Phi| over the controlled entries (Phi's off-diagonal, or B)."""
        tensor = controlled_tensor(self.phi).detach().cpu()
        return tensor[self.pairs[:, 0], self.pairs[:, 1]].abs().mean().item()

    def epoch_summary(self, since_row: int) -> Dict[str, float]:
        """Columns for metrics.csv: Phi movement and the mean reward of this epoch's windows."""
        rewards = [row["reward"] for row in self.rows[since_row:] if row["reward"] != ""]
        return {"phi_offdiag_mean_abs": self.offdiag_mean_abs(),
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
                            controlled=self.phi.parametrisation, num_elements=int(self.pairs.shape[0]))

    def state_dict(self) -> Dict:
        return {
            "step": self.step, "learner": self.learner.state_dict(), "memory": self.memory.state_dict(),
            "history": self.history.state_dict(), "window_reward": self.window_reward.state_dict(),
            "generator": self.generator.get_state(), "pending": self.pending,
            "rows": [dict(row) for row in self.rows], "feature_size": self.feature_size,
            "num_elements": int(self.pairs.shape[0]),
        }

    def load_state_dict(self, state: Dict) -> None:
        state = _to_cpu(state)  # a checkpoint loaded onto CUDA: the controller lives on CPU
        for key, mine in (("feature_size", self.feature_size), ("num_elements", int(self.pairs.shape[0]))):
            if state.get(key) != mine:
                raise ControllerError(f"checkpoint controller has {key}={state.get(key)!r}; this run has {mine}")
        self.learner.load_state_dict(state["learner"])
        self.memory.load_state_dict(state["memory"])
        self.history.load_state_dict(state["history"])
        self.window_reward.load_state_dict(state["window_reward"])
        self.generator.set_state(state["generator"])
        self.pending = state["pending"]
        self.rows = [dict(row) for row in state["rows"]]
        self.step = int(state["step"])


def _to_cpu(value):
    if isinstance(value, torch.Tensor):
        return value.cpu()
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu(v) for v in value)
    return value


def steps_per_epoch(num_train: int, batch_size: int, drop_last: bool) -> int:
    """Student updates per epoch of a classification task (one process)."""
    return num_train // batch_size if drop_last else math.ceil(num_train / batch_size)
