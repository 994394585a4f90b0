"""Multi-network ALA: every child's experience reaches every controller (docs/design.md §3.4).

One child model per process (``torchrun``). At the end of a window each process holds one
transition ``<s_t, a_t, r_t, s_{t+1}>`` of its child; ``gather_transitions`` all-gathers them so
that every process stores the same transitions, in rank order, in its replay memory. With the same
policy initialisation and replay seed everywhere, every controller then samples the same
trajectories and takes the same REINFORCE step: the controllers stay identical without sending
weights.

A transition travels as one flat float64 tensor (exact for float32 states and small integers):
``[state (P F), next_state (P F), action (P), reward (P), child, step]`` (a number reward is sent
P times: children share their settings, so each reads it back as the kind it sent). A first all-gather of the
shapes checks that all children agree on (P, F) before the payload is sent.
"""

from __future__ import annotations

from typing import List, Optional

import torch
import torch.distributed as dist

from .errors import ControllerError
from .memory import Transition


def _all_gather(tensor: torch.Tensor) -> List[torch.Tensor]:
    out = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(out, tensor)
    return out


def gather_transitions(transition: Transition, device: Optional[torch.device] = None) -> List[Transition]:
    """The transitions of all processes, in rank order (``[transition]`` without a process group).

    Args:
        transition: this process's transition; ``next_state`` is required.
        device: where the collective runs (a CUDA device for NCCL; default CPU, for gloo).
    Raises:
        ControllerError: a missing next state, or children whose states differ in shape.
    """
    if transition.next_state is None:
        raise ControllerError("a gathered transition needs its next_state (P, F)")
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [transition]
    device = torch.device("cpu") if device is None else device
    P, F = transition.state.shape
    shapes = _all_gather(torch.tensor([P, F, *transition.next_state.shape], dtype=torch.long, device=device))
    shapes = [tuple(s.tolist()) for s in shapes]
    if len(set(shapes)) != 1 or shapes[0][:2] != shapes[0][2:]:
        raise ControllerError(
            f"children's (P, F, P', F') state shapes per rank are {shapes}; multi-network ALA needs "
            "the same task, loss and controller settings in every process"
        )
    payload = torch.cat([
        transition.state.reshape(-1).double(), transition.next_state.reshape(-1).double(),
        transition.action.reshape(-1).double(),
        torch.as_tensor(transition.reward, dtype=torch.float64).expand(P),
        torch.tensor([transition.child, transition.step], dtype=torch.float64),
    ]).to(device)
    per_element = isinstance(transition.reward, torch.Tensor) and transition.reward.dim() > 0
    out = []
    for flat in _all_gather(payload):
        flat = flat.cpu()
        n = P * F
        state = flat[:n].reshape(P, F).to(transition.state.dtype)
        next_state = flat[n:2 * n].reshape(P, F).to(transition.next_state.dtype)
        action = flat[2 * n:2 * n + P].long()
        rewards = flat[2 * n + P:2 * n + 2 * P]
        reward = rewards.clone() if per_element else rewards[0].item()
        child, step = flat[2 * n + 2 * P:].tolist()
        out.append(Transition(state, action, reward, next_state, int(child), int(step)))
    return out
