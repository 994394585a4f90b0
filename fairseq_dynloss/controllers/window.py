"""The ALA window controller: the bookkeeping of one child, shared by ``dynloss-train``
(``trainer/ala.py``) and ``fairseq-train --task translation_ala`` (``tasks/translation_ala.py``).

The caller measures the reward metric M_j of the student after every (measured) update and calls
``observe(M_j)``; the call that completes a window of K values also brings the validation state
(``window_ends()`` says when). At the end of window t:

1. ``WindowReward`` turns the window's values into ``M_t`` and the reward
   ``r_t = sign(M_{t-1} - M_t)`` (flipped for higher-is-better metrics) of the action ``a_{t-1}``
   taken at the end of window t-1 (the first window only sets ``M_0``); with per-class credit
   (``credit="classes"``) each element (i, j) is rewarded instead with the sign of the change of
   the metric over the validation examples of classes i and j (``reward.ClassCredit``);
2. the target builds the features ``s_t`` of every controlled element (``targets.py``), from the
   validation state -- or, for the state ablation (``state_source="random"``), from a random
   matrix of the same shape and range, which carries no information about the student;
3. the transition ``<s_{t-1}, a_{t-1}, r_t, s_t>`` (all children's, in rank order, for
   multi-network ALA) gets its advantage ``r_t - b`` and the policy takes one REINFORCE step
   (``reinforce.py``: on-policy, or importance-weighted replay from a bounded memory);
4. the policy samples ``a_t`` in {-beta, 0, +beta} per element (``beta = base_beta / sqrt(P)``)
   and the target moves the controlled values (clamped).

**Held actions** (``hold = H > 1``, an option; the slides decide every window, H = 1): the policy
decides only at every H-th window end and its actions are applied again at each of the H - 1
window ends between, so an element keeps moving the same way for H windows; the decision's
reward compares the window metric (per-class metrics under per-class credit) at the next
decision with the one at this decision. Why: on MNIST-1D one window's move of Phi does not
change, or lowers, the next window's metric, while the same moves held for a whole run gain
8-9 points on pair-flip noise (docs/investigation.md §4c): a one-window reward cannot see the
benefit. Measured there (H = 20): the held reward does see it, with the helpful sign (+0.056 for
a raise of a flipped pair, 20 seeds), but too weakly for REINFORCE to learn from in a run, so it
is not the default. ``H = 1`` is exactly the slides' controller.

Everything random has its own seeded generator and every piece of state is in ``state_dict``, so a
resumed run equals the uninterrupted one.
"""

from __future__ import annotations

import csv
import os
from typing import Callable, Dict, List, Optional

import torch

from fairseq_dynloss.csv_rows import write_rows  # ala_log.csv; re-exported by the package

from .errors import ControllerError
from .memory import ReplayMemory, Transition
from .policy import PairPolicy, beta_for, sample_actions
from .reinforce import ReinforceLearner, save_controller
from .reward import ClassCredit, WindowReward, reward
from .state import StateHistory

STATE_SOURCES = ("confusion", "random")
CREDITS = ("window", "classes")  # one reward for every element (the slides) | per-class credit
LOG_FILE = "ala_log.csv"
POLICY_FILE = "ala_controller.pt"


class WindowController:
    """The ALA controller of one child (module docstring).

    Args:
        target: a ``PairTarget`` or ``ElementTarget`` (moved in place).
        metric: reward metric name (``reward.METRIC_DIRECTION``).
        window: K, observed metric values per window.
        gamma: discount of the window metric.
        reward_average: decay of the reward's moving-average reference (0: the previous window;
            ``reward.WindowReward``).
        base_beta: step size before the 1 / sqrt(P) scaling.
        seed: seeds the policy initialisation, sampling, replay and the random-state ablation.
        history: H earlier states in the features.
        hidden, lr, baseline_decay, entropy_bonus, clip: policy and learner settings.
        replay_capacity: transitions kept for replay (0: on-policy, no memory).
        replay_batch: transitions per policy step (fresh ones plus replayed ones; with a memory).
        train_policy: False: act with the policy without learning.
        policy: a policy to start from (transfer); default a fresh ``PairPolicy``.
        state_source: ``confusion`` (the validation state) or ``random`` (ablation).
        rank: this child's id (multi-network ALA); its action generator is seeded apart.
        gather: multi-network: maps this child's transition to every child's, in rank order.
        credit: ``window`` (the slides: one reward for all elements) or ``classes`` (per-element
            rewards from per-class metrics; a ``PairTarget`` over a full Phi only).
        hold: H, windows an action is held for (module docstring; 1: the slides).
    """

    def __init__(self, target, *, metric: str, window: int, gamma: float, base_beta: float, seed: int,
                 history: int, hidden: int = 32, lr: float = 0.01, baseline_decay: float = 0.8,
                 entropy_bonus: float = 0.0, clip: float = 2.0, replay_capacity: int = 0,
                 replay_batch: int = 1, train_policy: bool = True, policy: Optional[PairPolicy] = None,
                 state_source: str = "confusion", rank: int = 0,
                 gather: Optional[Callable[[Transition], List[Transition]]] = None,
                 reward_average: float = 0.0, credit: str = "window", hold: int = 1):
        if credit not in CREDITS:
            raise ControllerError(f"credit={credit!r}; expected one of {list(CREDITS)}")
        if credit == "classes" and getattr(target, "bucketed", True):
            raise ControllerError("credit='classes' rewards the class pairs of a full Phi from per-class "
                                  "metrics; this controller acts on "
                                  f"{getattr(target, 'description', type(target).__name__)!r}; expected "
                                  "credit='window'")
        if state_source not in STATE_SOURCES:
            raise ControllerError(f"state={state_source!r}; expected one of {list(STATE_SOURCES)}")
        if isinstance(replay_capacity, bool) or not isinstance(replay_capacity, int) or replay_capacity < 0:
            raise ControllerError(f"replay_capacity={replay_capacity!r}; expected an integer >= 0 (0: on-policy)")
        if isinstance(replay_batch, bool) or not isinstance(replay_batch, int) or replay_batch < 1:
            raise ControllerError(f"replay_batch={replay_batch!r}; expected an integer >= 1")
        if isinstance(hold, bool) or not isinstance(hold, int) or hold < 1:
            raise ControllerError(f"hold={hold!r}; expected an integer >= 1 (windows an action is held for)")
        if hold > 1 and reward_average:
            raise ControllerError(f"hold={hold} rewards a decision against the metric at the last decision; "
                                  f"reward_average={reward_average!r} expected 0")
        self.target = target
        self.metric = metric
        self.hold = hold
        self.since_decision = 0  # window ends since the last decision
        self.decision_metric: Optional[float] = None  # the window metric at the last decision (hold > 1)
        self.window_reward = WindowReward(metric, window, gamma, reward_average)
        self.window = self.window_reward.window
        self.credit = credit
        self.class_credit = (ClassCredit(metric, target.elements, target.num_classes)
                             if credit == "classes" else None)
        self.beta = beta_for(target.num_elements, base_beta)
        self.feature_size = target.feature_size
        self.policy = policy if policy is not None else PairPolicy(self.feature_size, hidden=hidden, seed=seed)
        self.learner = ReinforceLearner(self.policy, lr=lr, baseline_decay=baseline_decay,
                                        entropy_bonus=entropy_bonus, clip=clip)
        self.memory = ReplayMemory(replay_capacity, seed=seed + 1) if replay_capacity else None
        self.replay_batch = replay_batch
        self.train_policy = bool(train_policy)
        self.history = StateHistory(history)
        self.state_source = state_source
        self.rank = int(rank)
        self.gather = gather if gather is not None else (lambda transition: [transition])
        self.generator = torch.Generator().manual_seed(int(seed) + 2 + 1_000_003 * self.rank)
        self.state_generator = torch.Generator().manual_seed(int(seed) + 3 + 1_000_003 * self.rank)
        self.pending: Optional[Dict[str, torch.Tensor]] = None  # features and action of window t-1
        self.transitions = 0  # transitions of this child so far (their window index)
        self.rows: List[Dict] = []
        self._logged: Optional[tuple] = None  # (path, columns, rows) of the log this process wrote

    @property
    def num_elements(self) -> int:
        return self.target.num_elements

    def window_ends(self) -> bool:
        """Whether the next ``observe`` completes a window (it then needs the state)."""
        return len(self.window_reward.values) + 1 == self.window

    def _input_state(self, state: torch.Tensor) -> torch.Tensor:
        if self.state_source == "confusion":
            return state
        # the ablation: same shape and range as the real state, no information about the student
        low, high = state.min().item(), state.max().item()
        noise = torch.rand(state.shape, generator=self.state_generator, dtype=torch.float64)
        return (low + (high - low) * noise).to(state.dtype)

    def observe(self, value: float, state: Optional[torch.Tensor] = None, progress: float = 0.0,
                update: int = 0, extra: Optional[Dict] = None,
                class_metric: Optional[torch.Tensor] = None) -> Optional[Dict]:
        """One metric value; at a window end (``state`` required) learn and act.

        Args:
            value: the reward metric of the student after its latest measured update.
            state: the validation state (``target.state``), required when ``window_ends()``.
            class_metric: (C,) the reward metric per class (``reward.class_means``), required at a
                window end under per-class credit.
            progress: training fraction in [0, 1] (a feature).
            update: the student's update count (logged).
            extra: more columns for the log row (timings).
        Returns:
            The window's log row at a window end, else None.
        """
        end = self.window_ends()
        if end and state is None:
            raise ControllerError("this observation ends a window; expected the validation state")
        if end and self.class_credit is not None and class_metric is None:
            raise ControllerError("this observation ends a window under credit='classes'; expected "
                                  "the per-class metric (class_metric)")
        r = self.window_reward.add(value)  # validates value before anything else moves
        if not end:
            return None
        state = self._input_state(state.detach().cpu())
        self.since_decision += 1
        if self.pending is not None and self.since_decision < self.hold:
            return self._hold(state, value, update, extra)
        self.since_decision = 0
        if self.hold > 1:  # the change since the last decision, not since the last window
            previous, self.decision_metric = self.decision_metric, self.window_reward.previous
            r = None if previous is None else reward(previous, self.decision_metric, self.window_reward.higher)
        credit = r if self.class_credit is None else self.class_credit.add(class_metric)
        features = self.target.features(state, self.history.matrices(state), progress)
        stats: Dict[str, float] = {}
        if self.pending is not None:  # r rewards the action taken at the last decision
            mine = Transition(self.pending["state"], self.pending["action"], credit, features, self.rank,
                              self.transitions)
            self.transitions += 1
            stats = self._learn(self.gather(mine))
        with torch.no_grad():  # one policy forward gives the actions and the logged entropy
            logp = torch.log_softmax(self.policy(features), dim=-1)
            actions = sample_actions(logp, self.generator).to(features.device)
            entropy = -(logp.exp() * logp).sum(-1).mean().item()
        self.target.apply(actions, self.beta)
        self.pending = {"state": features, "action": actions, "entropy": torch.tensor(entropy)}
        self.history.push(state)
        return self._log(update, value, r, actions, entropy, extra, {
            "baseline": "" if self.learner.baseline is None else float(torch.as_tensor(self.learner.baseline).mean()),
            **({} if self.class_credit is None else
               {"element_reward": "" if credit is None else credit.mean().item()}),
            "advantage": stats.get("advantage", ""), "policy_loss": stats.get("loss", "")})

    def _hold(self, state: torch.Tensor, value: float, update: int, extra: Optional[Dict]) -> Dict:
        """A window end between decisions (``hold > 1``): the last decision's actions again."""
        actions = self.pending["action"]
        self.target.apply(actions, self.beta)
        self.history.push(state)
        return self._log(update, value, None, actions, float(self.pending["entropy"]), extra, {"held": 1})

    def _log(self, update: int, value: float, r: Optional[float], actions: torch.Tensor, entropy: float,
             extra: Optional[Dict], columns: Dict) -> Dict:
        """Append and return the window's log row: the shared columns around ``columns``."""
        row = {
            "update": int(update), "window": len(self.rows), "reward": "" if r is None else r,
            "metric": float(value), "window_metric": self.window_reward.previous, **self.target.summary(),
            "entropy": entropy, **columns,
            **dict(zip(("actions_minus", "actions_zero", "actions_plus"),
                       torch.bincount(actions.cpu() + 1, minlength=3).tolist())), **(extra or {}),
        }
        self.rows.append(row)
        return row

    def _learn(self, fresh: List[Transition]) -> Dict[str, float]:
        """Advantages of the fresh transitions (baseline from before them), then one policy step."""
        for t, advantage in zip(fresh, self.learner.advantages([t.reward for t in fresh])):
            t.advantage = advantage
        mine = next((t for t in fresh if t.child == self.rank), fresh[0])
        batch = list(fresh)
        if self.memory is not None:
            with torch.no_grad():  # the policy that took these actions is the current one
                for t in fresh:
                    t.behaviour = self.policy.log_prob(t.state, t.action).double().cpu()
            if len(self.memory) and self.replay_batch > len(fresh):
                batch += self.memory.sample(self.replay_batch - len(fresh))
            self.memory.extend(fresh)
        stats = {"advantage": float(torch.as_tensor(mine.advantage).mean())}
        if self.train_policy:
            stats.update(self.learner.update(batch))
        return stats

    # -- files and checkpoints ----------------------------------------------------------------
    def write_files(self, out_dir: str, save_policy: bool = True, **extra) -> None:
        """``ala_log.csv`` and the policy.

        The log is rewritten from all rows (atomically) on this process's first call for a
        folder and whenever the columns change, so a resumed run never duplicates a row; later
        calls append only the new rows. Rewriting every epoch cost more than the epoch's
        training itself late in a short MNIST-1D run (~25 ms for 300 rows vs ~40 ms of updates);
        a kill during an append can only cut the last row (``csv_rows.read_complete_rows``).
        """
        os.makedirs(out_dir, exist_ok=True)
        path = os.path.join(out_dir, LOG_FILE)
        if self.rows:
            columns = list(dict.fromkeys(key for row in self.rows for key in row))
            logged = self._logged
            if logged is None or logged[0] != path or logged[1] != columns or logged[2] > len(self.rows) \
                    or not os.path.exists(path):
                write_rows(path, self.rows)
            elif logged[2] < len(self.rows):
                with open(path, "a", newline="") as handle:
                    csv.DictWriter(handle, fieldnames=columns).writerows(self.rows[logged[2]:])
            self._logged = (path, columns, len(self.rows))
        if save_policy:
            save_controller(os.path.join(out_dir, POLICY_FILE), self.learner, self.memory,
                            window=self.window, reward_metric=self.metric, state=self.state_source,
                            controlled=self.target.description, num_elements=self.num_elements, **extra)

    def state_dict(self) -> Dict:
        """Everything a resumed run needs (plain containers and tensors: ``weights_only``-safe)."""
        return {
            "learner": self.learner.state_dict(),
            "memory": None if self.memory is None else self.memory.state_dict(),
            "history": self.history.state_dict(), "window_reward": self.window_reward.state_dict(),
            "class_credit": None if self.class_credit is None else self.class_credit.state_dict(),
            "generator": self.generator.get_state(), "state_generator": self.state_generator.get_state(),
            "pending": self.pending, "transitions": self.transitions,
            "hold": self.hold, "since_decision": self.since_decision, "decision_metric": self.decision_metric,
            "rows": [dict(row) for row in self.rows], "feature_size": self.feature_size,
            "num_elements": self.num_elements,
            "target": self.target.state_dict() if hasattr(self.target, "state_dict") else None,
        }

    def load_state_dict(self, state: Dict) -> None:
        """Restore a state of a run with the same settings; checked before anything changes."""
        for key, mine in (("feature_size", self.feature_size), ("num_elements", self.num_elements)):
            if state.get(key) != mine:
                raise ControllerError(f"checkpoint ALA controller has {key}={state.get(key)!r}; this run has {mine}")
        if (state.get("class_credit") is None) != (self.class_credit is None):
            raise ControllerError("checkpoint ALA controller and this run differ in credit (window / "
                                  "classes); resume with the checkpoint's setting")
        if (state.get("memory") is None) != (self.memory is None):
            raise ControllerError("checkpoint ALA controller and this run differ in replay (replay_capacity 0 "
                                  "means on-policy); resume with the checkpoint's setting")
        if state.get("hold", 1) != self.hold:
            raise ControllerError(f"checkpoint ALA controller has hold={state.get('hold', 1)}; this run has "
                                  f"hold={self.hold}; resume with the checkpoint's setting")
        if hasattr(self.target, "load_state_dict"):
            self.target.load_state_dict(state["target"])
        self.learner.load_state_dict(state["learner"])
        if self.memory is not None:
            self.memory.load_state_dict(state["memory"])
        self.history.load_state_dict(state["history"])
        self.window_reward.load_state_dict(state["window_reward"])
        if self.class_credit is not None:
            self.class_credit.load_state_dict(state["class_credit"])
        self.generator.set_state(state["generator"])
        self.state_generator.set_state(state["state_generator"])
        self.pending = state["pending"]
        self.transitions = int(state["transitions"])
        self.since_decision = int(state.get("since_decision", 0))
        self.decision_metric = state.get("decision_metric")
        self.rows = [dict(row) for row in state["rows"]]
        self._logged = None  # the next write rewrites the log from these rows
