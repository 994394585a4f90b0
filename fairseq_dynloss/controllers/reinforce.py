"""REINFORCE for the ALA policy (slides, eq. 3) and controller files.

One-step episodes (the ALA paper trains its controller "with one-step episodes (T = 1)"): the
action ``a_t`` taken at the end of window t is credited with the reward ``r_{t+1}`` of the next
window only,

    grad J = E[ (r_{t+1} - b_t) * sum_e grad log pi(a_{t,e} | s_{t,e}) ]  (mean over elements e)

* **On-policy** by default: each window's policy step uses the transition(s) that just arrived
  (one per child), which were sampled from the current policy.
* **Replay** (``replay_batch > 1`` with a memory): the fresh transitions plus older ones from a
  bounded memory (FIFO eviction), each element's log-probability weighted by the truncated
  importance ratio ``min(pi(a|s) / mu(a|s), clip)`` against the behaviour policy ``mu`` that took
  the action (its log-probabilities are stored with the transition). Without the ratio, replayed
  early windows -- whose reward is +1 whatever the action, because the student improves anyway --
  would reinforce the training trend.
* **Baseline** per step: ``b`` tracks the current reward, ``b <- decay * b + (1 - decay) r``
  after each window (the mean reward of the window's children), starting at the first window's
  reward; ``r - b`` uses the baseline from *before* the reward. A constant reward thus gives zero
  advantage after a few windows and cannot push the policy anywhere. Under per-class credit
  (``reward.ClassCredit``) the rewards, the baseline and the advantages are (P,) tensors: each
  element's log-probability is weighted by its own advantage.
* **Entropy bonus**: ``- entropy_bonus * mean entropy`` in the loss keeps actions mixed.
* The policy loss is averaged over elements and transitions; one Adam step per window.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Union

import torch

from ..atomic_save import atomic_torch_save
from ..file_checks import check_controller_file, read_torch_file
from .errors import ControllerError, check_number
from .memory import ReplayMemory, Transition
from .policy import PairPolicy

FILE_FORMAT = "fairseq_dynloss.ala_controller"
FILE_VERSION = 2  # 2: standardised pair features (F = 7 + 2 H); version-1 policies read raw C


class ReinforceLearner:
    """Trains a ``PairPolicy`` by one-step REINFORCE (module docstring).

    Args:
        policy: the shared policy network.
        lr: Adam learning rate (> 0).
        baseline_decay: decay of the per-step baseline, in [0, 1) (0: the last reward).
        entropy_bonus: weight (>= 0) of the mean policy entropy in the objective.
        clip: truncation (>= 1) of replayed importance ratios.
    """

    def __init__(self, policy: PairPolicy, lr: float = 1e-3, baseline_decay: float = 0.8,
                 entropy_bonus: float = 0.0, clip: float = 2.0):
        if not isinstance(lr, (int, float)) or not lr > 0:
            raise ControllerError(f"controller lr={lr!r}; expected > 0")
        if not isinstance(baseline_decay, (int, float)) or not 0.0 <= baseline_decay < 1.0:
            raise ControllerError(f"baseline_decay={baseline_decay!r}; expected a value in [0, 1)")
        self.policy = policy
        self.lr = float(lr)
        self.baseline_decay = float(baseline_decay)
        self.entropy_bonus = check_number("entropy_bonus", entropy_bonus, 0.0)
        self.clip = check_number("importance clip", clip, 1.0)
        # fused: one kernel for all six tensors instead of ~8 operations each (CPU, the policy's
        # 90 x 11 features: 46 instead of 160 us per step; BENCHMARKS.md, issue 15)
        self.optimizer = torch.optim.Adam(policy.parameters(), lr=self.lr, fused=True)
        self.baseline: Optional[float] = None  # set by the first rewards
        self.num_updates = 0

    def advantages(self, rewards: Sequence[Union[float, torch.Tensor]]) -> List[Union[float, torch.Tensor]]:
        """``r - b`` for the rewards of one window (one per child), then the baseline moves.

        Rewards are numbers, or (P,) per-element rewards (per-class credit): then the baseline
        is per element too, each element's tracking its own reward.
        """
        if not rewards:
            raise ControllerError("no rewards for the baseline; expected >= 1")
        per_element = [isinstance(r, torch.Tensor) and r.dim() > 0 for r in rewards]
        if any(per_element) != all(per_element) or (
                self.baseline is not None and isinstance(self.baseline, torch.Tensor) != any(per_element)):
            raise ControllerError("rewards mix numbers and per-element tensors; expected one kind per run")
        rewards = [r.detach().double().cpu() if e else float(r) for r, e in zip(rewards, per_element)]
        mean = sum(rewards) / len(rewards)
        before = mean if self.baseline is None else self.baseline
        self.baseline = mean if self.baseline is None else (
            self.baseline_decay * self.baseline + (1.0 - self.baseline_decay) * mean)
        return [r - before for r in rewards]

    def update(self, transitions: Sequence[Transition]) -> Dict[str, float]:
        """One policy-gradient step from transitions carrying their ``advantage``.

        Transitions with ``behaviour`` log-probabilities are importance-weighted (truncated at
        ``clip``); fresh on-policy ones have ratio 1 either way.

        Returns log values: loss, mean advantage, mean importance ratio and the policy's mean
        per-element entropy on the batch (before the step).
        """
        if not transitions:
            raise ControllerError("REINFORCE update from no transitions; expected >= 1")
        if any(t.advantage is None for t in transitions):
            raise ControllerError("a transition without its advantage; expected advantages() first")
        device = self.policy.net[0].weight.device
        sizes = torch.tensor([t.state.shape[0] for t in transitions])
        if len(transitions) == 1:
            states, actions = transitions[0].state.to(device), transitions[0].action.to(device)
        else:
            states = torch.cat([t.state for t in transitions]).to(device)
            actions = torch.cat([t.action for t in transitions]).to(device)
        log_probs, entropies = self.policy.log_prob_and_entropy(states, actions)
        # each transition weighs 1 / N, each of its P elements 1 / P: the mean over both; an
        # element's advantage is the transition's, or its own under per-class credit
        weights = torch.cat([torch.as_tensor(t.advantage, dtype=torch.float64).expand(n) / (n * len(transitions))
                             for n, t in zip(sizes.tolist(), transitions)]).to(device, log_probs.dtype)
        ratio = None
        if any(t.behaviour is not None for t in transitions):
            behaviour = torch.cat([t.behaviour if t.behaviour is not None else torch.full((int(n),), math.nan)
                                   for n, t in zip(sizes, transitions)]).to(device, log_probs.dtype)
            known = ~torch.isnan(behaviour)
            ratio = torch.where(known, (log_probs.detach() - behaviour.nan_to_num(0.0)).exp().clamp(max=self.clip),
                                torch.ones_like(log_probs))
            weights = weights * ratio
        # the mean over transitions of each one's mean element entropy
        entropy = (entropies * (1.0 / (sizes * len(transitions))).repeat_interleave(sizes).to(entropies)).sum()
        loss = -(weights * log_probs).sum() - self.entropy_bonus * entropy
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.num_updates += 1
        mean_advantage = sum(float(torch.as_tensor(t.advantage).mean()) for t in transitions) / len(transitions)
        return {"loss": loss.item(), "mean_advantage": mean_advantage,
                "importance_ratio": 1.0 if ratio is None else ratio.mean().item(), "entropy": entropy.item()}

    def state_dict(self) -> Dict:
        return {"policy": {k: v.detach().cpu().clone() for k, v in self.policy.state_dict().items()},
                "optimizer": self.optimizer.state_dict(),
                "baseline": self.baseline.clone() if isinstance(self.baseline, torch.Tensor) else self.baseline,
                "num_updates": self.num_updates, "lr": self.lr, "baseline_decay": self.baseline_decay,
                "entropy_bonus": self.entropy_bonus, "clip": self.clip}

    def load_state_dict(self, state: Dict) -> None:
        """Restore optimizer, baseline and counter (and the policy weights when present)."""
        if "policy" in state:
            _load_policy_weights(self.policy, state["policy"], "learner state")
        self.optimizer.load_state_dict(state["optimizer"])
        baseline = state["baseline"]
        self.baseline = None if baseline is None else (
            baseline.double().clone() if isinstance(baseline, torch.Tensor) and baseline.dim() else float(baseline))
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
    payload = read_torch_file(path, "controller file", ControllerError)  # empty / unreadable / corrupted
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
    # NaN / Inf weights, a crafted size: refused naming the file, before allocating
    check_controller_file(payload, lambda: PairPolicy(config["feature_size"], hidden=config["hidden"]), path)
    try:
        policy = PairPolicy(config["feature_size"], hidden=config["hidden"])
    except (KeyError, ControllerError) as err:
        raise ControllerError(f"controller file {path!r} has a bad policy config {config!r}: {err}") from err
    _load_policy_weights(policy, payload["policy"], f"controller file {path!r}")
    return LoadedController(policy, payload.get("learner"), payload.get("memory"), dict(payload.get("extra", {})))
