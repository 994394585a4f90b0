"""Replay memory of ALA experiences ``<s_t, a_t, r_t, s_{t+1}>`` from one or several children.

Every transition records the child model it came from and its window index ``step`` in that
child's run, and -- for importance-weighted replay -- the behaviour policy's log-probabilities of
its actions and its advantage when it was stored (``ReinforceLearner``). The memory is bounded:
past ``capacity`` the oldest transition is evicted, so stale early windows, whose reward reflects
the training trend more than the action, stop being replayed. Sampling draws from the memory's own seeded generator, and the generator
state is part of ``state_dict``, so a resumed run samples exactly what the uninterrupted run would.

Tensors are stored detached on CPU. Size: one transition holds two (P, F) float states (P = 9900,
F = 6 is ~0.5 MB), which bounds a sensible capacity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Union

import torch

from .errors import ControllerError, check_finite_tensor, check_positive_int


@dataclass
class Transition:
    """One controller step of one child: state (P, F), action (P,) in {-1, 0, 1}, reward
    r_{t+1} of that action (a number, or (P,) per-element rewards under per-class credit,
    ``reward.ClassCredit``), next state (P', F) or None, child id, window index within the child's
    run, behaviour log-probabilities (P,) of the actions and the advantage (shaped as the
    reward), or None."""

    state: torch.Tensor
    action: torch.Tensor
    reward: Union[float, torch.Tensor]
    next_state: Optional[torch.Tensor] = None
    child: int = 0
    step: int = 0
    behaviour: Optional[torch.Tensor] = None
    advantage: Optional[Union[float, torch.Tensor]] = None


def _reward_value(name: str, value, elements: int) -> Union[float, torch.Tensor]:
    """A finite number, or a finite (P,) tensor (float64, CPU) of per-element values."""
    if isinstance(value, torch.Tensor) and value.dim() > 0:
        check_finite_tensor(name, value)
        if tuple(value.shape) != (elements,):
            raise ControllerError(f"{name} has shape {tuple(value.shape)}; expected ({elements},), "
                                  "one per state row, or a number")
        return value.detach().double().cpu().clone()
    value = float(value)
    if not math.isfinite(value):
        raise ControllerError(f"{name}={value}; expected a finite number")
    return value


def _validated(state, action, reward, next_state, child, step, behaviour=None, advantage=None) -> Transition:
    check_finite_tensor("state", state)
    if state.dim() != 2:
        raise ControllerError(f"state has shape {tuple(state.shape)}; expected (P, F)")
    if (not isinstance(action, torch.Tensor) or action.is_floating_point()
            or tuple(action.shape) != (state.shape[0],)):
        raise ControllerError(
            f"action must be an integer tensor of shape ({state.shape[0]},), one per state row"
        )
    if action.numel() and (action.min() < -1 or action.max() > 1):
        raise ControllerError("action values must be in {-1, 0, 1}")
    reward = _reward_value("reward", reward, state.shape[0])
    if next_state is not None:
        check_finite_tensor("next_state", next_state)
        if next_state.dim() != 2 or next_state.shape[1] != state.shape[1]:
            raise ControllerError(
                f"next_state has shape {tuple(next_state.shape)}; expected (P', {state.shape[1]})"
            )
        next_state = next_state.detach().cpu().clone()
    if behaviour is not None:
        check_finite_tensor("behaviour log-probabilities", behaviour)
        if tuple(behaviour.shape) != (state.shape[0],):
            raise ControllerError(
                f"behaviour log-probabilities have shape {tuple(behaviour.shape)}; expected ({state.shape[0]},)"
            )
        behaviour = behaviour.detach().double().cpu().clone()
    if advantage is not None:
        advantage = _reward_value("advantage", advantage, state.shape[0])
    return Transition(state.detach().cpu().clone(), action.detach().long().cpu().clone(), reward,
                      next_state, check_positive_int("child", child, 0), check_positive_int("step", step, 0),
                      behaviour, advantage)


class ReplayMemory:
    """Bounded FIFO memory of transitions with seeded sampling.

    Args:
        capacity: the most transitions kept.
        seed: seed of the sampling generator.
    """

    def __init__(self, capacity: int, seed: int = 0):
        self.capacity = check_positive_int("capacity", capacity)
        self.generator = torch.Generator().manual_seed(int(seed))
        self.transitions: List[Transition] = []
        self.next_step: Dict[int, int] = {}

    def __len__(self) -> int:
        return len(self.transitions)

    def add(self, state: torch.Tensor, action: torch.Tensor, reward: Union[float, torch.Tensor],
            next_state: Optional[torch.Tensor] = None, child: int = 0,
            step: Optional[int] = None) -> Transition:
        """Store a transition; ``step`` defaults to the child's next window index."""
        step = self.next_step.get(child, 0) if step is None else step
        transition = _validated(state, action, reward, next_state, child, step)
        self._push(transition)
        return transition

    def extend(self, transitions: Sequence[Transition]) -> None:
        """Store transitions gathered from several children (validated before any is stored)."""
        checked = [_validated(t.state, t.action, t.reward, t.next_state, t.child, t.step, t.behaviour,
                              t.advantage) for t in transitions]
        for t in checked:
            self._push(t)

    def _push(self, transition: Transition) -> None:
        self.transitions.append(transition)
        self.next_step[transition.child] = max(self.next_step.get(transition.child, 0), transition.step + 1)
        if len(self.transitions) > self.capacity:
            del self.transitions[0]

    def _check_batch(self, batch_size: int) -> int:
        batch_size = check_positive_int("batch_size", batch_size)
        if not self.transitions:
            raise ControllerError("sampling from an empty replay memory; expected >= 1 transition")
        return min(batch_size, len(self.transitions))

    def sample(self, batch_size: int) -> List[Transition]:
        """``min(batch_size, len)`` distinct transitions, uniformly at random."""
        n = self._check_batch(batch_size)
        order = torch.randperm(len(self.transitions), generator=self.generator)[:n]
        return [self.transitions[i] for i in order.tolist()]

    def state_dict(self) -> Dict:
        """Plain containers and tensors only (loadable with ``weights_only=True``)."""
        return {
            "capacity": self.capacity,
            "transitions": [
                {"state": t.state, "action": t.action, "reward": t.reward, "next_state": t.next_state,
                 "child": t.child, "step": t.step, "behaviour": t.behaviour, "advantage": t.advantage}
                for t in self.transitions
            ],
            "next_step": [[c, s] for c, s in sorted(self.next_step.items())],
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: Dict) -> None:
        """Restore a memory of the same capacity; validated before anything changes."""
        if state.get("capacity") != self.capacity:
            raise ControllerError(
                f"replay memory state has capacity {state.get('capacity')!r}; expected {self.capacity}"
            )
        items = state["transitions"]
        if len(items) > self.capacity:
            raise ControllerError(f"replay memory state holds {len(items)} transitions; capacity is {self.capacity}")
        transitions = [_validated(d["state"], d["action"], d["reward"], d.get("next_state"), d["child"], d["step"],
                                  d.get("behaviour"), d.get("advantage")) for d in items]
        generator_state = state["generator"]
        if not isinstance(generator_state, torch.Tensor) or generator_state.dtype != torch.uint8:
            raise ControllerError("replay memory state has no valid generator state (a uint8 tensor)")
        self.generator.set_state(generator_state.clone())
        self.transitions = transitions
        self.next_step = {int(c): int(s) for c, s in state["next_step"]}
