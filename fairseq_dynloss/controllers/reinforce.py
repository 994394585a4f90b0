"""REINFORCE for the ALA policy (slides, eq. 3) and controller files.

    grad J = E[ sum_t grad log pi(a_t | s_t) * sum_{k >= t} (r_k - b_k) ]

* ``log pi(a_t | s_t)`` of a step factorises over its P controlled elements; the learner uses its
  *mean* over elements (eq. 3 up to the positive factor 1/P, which keeps the loss scale
  independent of P; Adam is insensitive to the factor).
* Returns run to the end of each replayed trajectory (``ReplayMemory.sample_trajectories``: a
  window of one child and up to ``horizon - 1`` following windows).
* Baseline: ``b`` is an exponential moving average of the rewards seen so far,
  ``b <- decay * b + (1 - decay) * mean(batch rewards)``, starting at 0 (the mean of a sign reward
  under no information). One update uses the baseline from *before* its batch for every ``b_k``,
  so the baseline never depends on the rewards it is subtracted from.
* The loss is averaged over the steps of the batch; one Adam step per ``update``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Union

import torch

from ..atomic_save import atomic_torch_save
from .errors import ControllerError
from .memory import ReplayMemory, Transition
from .policy import PairPolicy

FILE_FORMAT = "fairseq_dynloss.ala_controller"
FILE_VERSION = 1


class ReinforceLearner:
    """Trains a ``PairPolicy`` by REINFORCE with a moving-average baseline.

    Args:
        policy: the shared policy network.
        lr: Adam learning rate (> 0).
        baseline_decay: EMA decay of the baseline, in [0, 1).
    """

    def __init__(self, policy: PairPolicy, lr: float = 1e-3, baseline_decay: float = 0.9):
        if not isinstance(lr, (int, float)) or not lr > 0:
            raise ControllerError(f"controller lr={lr!r}; expected > 0")
        if not isinstance(baseline_decay, (int, float)) or not 0.0 <= baseline_decay < 1.0:
            raise ControllerError(f"baseline_decay={baseline_decay!r}; expected a value in [0, 1)")
        self.policy = policy
        self.lr = float(lr)
        self.baseline_decay = float(baseline_decay)
        self.optimizer = torch.optim.Adam(policy.parameters(), lr=self.lr)
        self.baseline = 0.0
        self.num_updates = 0

    def returns(self, rewards: Sequence[float]) -> List[float]:
        """``sum_{k >= t} (r_k - b)`` for every t, with the current baseline b."""
        out, running = [], 0.0
        for r in reversed(list(rewards)):
            running += float(r) - self.baseline
            out.append(running)
        return out[::-1]

    def update(self, trajectories: Sequence[Sequence[Transition]]) -> Dict[str, float]:
        """One policy-gradient step from a batch of trajectories; then the baseline update.

        Replayed trajectories overlap (a window is often in several of them) and the loss is
        linear in the per-step weights, so every distinct transition goes through the policy once
        with the sum of its weights.

        Returns log values: loss, mean reward, baseline (after), mean advantage, and the policy's
        mean per-element entropy on the batch (before the step).
        """
        steps = [t for trajectory in trajectories for t in trajectory]
        if not steps:
            raise ControllerError("REINFORCE update from no transitions; expected >= 1")
        advantages = [a for trajectory in trajectories for a in self.returns([t.reward for t in trajectory])]
        slot: Dict[int, int] = {}
        distinct: List[Transition] = []
        weights: List[float] = []  # per distinct transition: sum of advantage / (P * steps)
        uses: List[int] = []
        for t, adv in zip(steps, advantages):
            k = slot.setdefault(id(t), len(distinct))
            if k == len(distinct):
                distinct.append(t)
                weights.append(0.0)
                uses.append(0)
            weights[k] += adv / (t.state.shape[0] * len(steps))
            uses[k] += 1
        device = self.policy.net[0].weight.device
        sizes = torch.tensor([t.state.shape[0] for t in distinct])
        states = torch.cat([t.state for t in distinct]).to(device)
        actions = torch.cat([t.action for t in distinct]).to(device)
        log_probs, entropies = self.policy.log_prob_and_entropy(states, actions)
        per_element = torch.tensor(weights, dtype=torch.float64).repeat_interleave(sizes)
        loss = -(per_element.to(device, log_probs.dtype) * log_probs).sum()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        rewards = [t.reward for t in steps]
        mean_reward = sum(rewards) / len(rewards)
        self.baseline = self.baseline_decay * self.baseline + (1.0 - self.baseline_decay) * mean_reward
        self.num_updates += 1
        with torch.no_grad():  # each step's rows as often as the step was replayed
            multiplicity = torch.tensor(uses, dtype=entropies.dtype).repeat_interleave(sizes).to(device)
            entropy = ((entropies * multiplicity).sum() / multiplicity.sum()).item()
        return {"loss": loss.item(), "mean_reward": mean_reward, "baseline": self.baseline,
                "mean_advantage": sum(advantages) / len(advantages), "entropy": entropy}

    def state_dict(self) -> Dict:
        return {"policy": {k: v.detach().cpu().clone() for k, v in self.policy.state_dict().items()},
                "optimizer": self.optimizer.state_dict(), "baseline": self.baseline,
                "num_updates": self.num_updates, "lr": self.lr, "baseline_decay": self.baseline_decay}

    def load_state_dict(self, state: Dict) -> None:
        """Restore optimizer, baseline and counter (and the policy weights when present)."""
        if "policy" in state:
            _load_policy_weights(self.policy, state["policy"], "learner state")
        self.optimizer.load_state_dict(state["optimizer"])
        self.baseline = float(state["baseline"])
        self.num_updates = int(state["num_updates"])


def _load_policy_weights(policy: PairPolicy, weights: Dict, where: str) -> None:
    try:
        policy.load_state_dict(weights, strict=True)
    except RuntimeError as err:
        raise ControllerError(f"{where}: policy weights do not fit the policy {policy.config}: {err}") from err


def save_controller(path: str, controller: Union[PairPolicy, ReinforceLearner],
                    memory: Optional[ReplayMemory] = None, **extra) -> None:
    """Write a controller file (atomically: temporary file + rename), ``weights_only``-safe.

    ``{"format", "version", "config": policy.config, "policy": weights, "learner": optimizer /
    baseline state or None, "memory": replay memory state or None, "extra": plain values}``.
    A policy alone is enough for policy transfer; learner and memory make a resumable file.
    """
    learner = controller if isinstance(controller, ReinforceLearner) else None
    policy = learner.policy if learner is not None else controller
    if not isinstance(policy, PairPolicy):
        raise ControllerError(f"cannot save a {type(controller).__name__}; expected a PairPolicy or ReinforceLearner")
    learner_state = None
    if learner is not None:
        learner_state = learner.state_dict()
        del learner_state["policy"]
    payload = {
        "format": FILE_FORMAT, "version": FILE_VERSION, "config": policy.config,
        "policy": {k: v.detach().cpu().clone() for k, v in policy.state_dict().items()},
        "learner": learner_state, "memory": None if memory is None else memory.state_dict(),
        "extra": dict(extra),
    }
    atomic_torch_save(payload, path)


@dataclass
class LoadedController:
    """What ``load_controller`` returns: a ready policy plus the optional saved states
    (``ReinforceLearner.load_state_dict(learner)``, ``ReplayMemory.load_state_dict(memory)``)."""

    policy: PairPolicy
    learner: Optional[Dict] = None
    memory: Optional[Dict] = None
    extra: Dict = field(default_factory=dict)


def load_controller(path: str, expected_feature_size: Optional[int] = None) -> LoadedController:
    """Read a controller file with ``weights_only=True``.

    Raises:
        ControllerError: missing / unreadable file, not a controller file, or a policy for a
            state size other than ``expected_feature_size``.
    """
    if not os.path.isfile(path):
        raise ControllerError(f"controller file {path!r} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ControllerError(f"cannot read controller file {path!r} with weights_only=True: {err}") from err
    if not isinstance(payload, dict) or payload.get("format") != FILE_FORMAT:
        raise ControllerError(f"{path!r} is not an ALA controller file (format {FILE_FORMAT!r})")
    if payload.get("version") != FILE_VERSION:
        raise ControllerError(
            f"controller file {path!r} has version {payload.get('version')!r}; expected {FILE_VERSION}"
        )
    config = payload["config"]
    if expected_feature_size is not None and config.get("feature_size") != expected_feature_size:
        raise ControllerError(
            f"controller file {path!r} holds a policy for states of feature size "
            f"{config.get('feature_size')!r}; this run builds states of feature size "
            f"{expected_feature_size} (check the state history length and the controlled loss)"
        )
    try:
        policy = PairPolicy(config["feature_size"], hidden=config["hidden"])
    except (KeyError, ControllerError) as err:
        raise ControllerError(f"controller file {path!r} has a bad policy config {config!r}: {err}") from err
    _load_policy_weights(policy, payload["policy"], f"controller file {path!r}")
    return LoadedController(policy, payload.get("learner"), payload.get("memory"), dict(payload.get("extra", {})))
