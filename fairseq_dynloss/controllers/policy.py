"""The ALA policy: one small network shared by every controlled element, and the Phi update.

Every window each controlled element ``e`` (a class pair of a full Phi, an entry of a bucketed
Phi's ``B``, a metric-learning loss parameter) gets the action ``a_e in {-beta, 0, +beta}``
sampled from ``pi_theta(. | s_e)``; the factorised policy's log-probability of the whole action is
``sum_e log pi_theta(a_e | s_e)``.

**Step size.** ``beta_for(P, base_beta) = base_beta / sqrt(P)``. With P elements stepping
independently, the Phi change of one window has Frobenius norm ``beta sqrt(P * q)``, where ``q`` is
the fraction of non-zero actions (2/3 for the initial uniform policy); dividing beta by ``sqrt(P)``
keeps it at ``base_beta sqrt(q)`` whatever the number of elements. (The public re-implementation
used beta = 0.1 for 4950 pairs -- a change of norm ~ 0.1 sqrt(9900 * 2/3) ~ 8 per window -- and
diverged.)
"""

from __future__ import annotations

import math
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from ..losses.phi import BucketedPhi, FullPhi, Phi
from .errors import ControllerError, check_finite_tensor, check_positive_int

ACTIONS = (-1, 0, 1)  # multiples of beta; logit k of the policy is action ACTIONS[k]


def check_beta(beta) -> float:
    """``beta`` as a float > 0 (finite), else ControllerError."""
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not math.isfinite(beta) or beta <= 0:
        raise ControllerError(f"beta={beta!r}; expected a finite step size > 0")
    return float(beta)


def beta_for(num_elements: int, base_beta: float) -> float:
    """``base_beta / sqrt(num_elements)`` (see the module docstring)."""
    base_beta = check_beta(base_beta)
    return base_beta / math.sqrt(check_positive_int("num_elements", num_elements))


class PairPolicy(nn.Module):
    """MLP ``F -> hidden -> tanh -> hidden -> tanh -> 3`` mapping features (P, F) to logits (P, 3).

    The output layer starts at zero, so the initial policy is uniform over {-beta, 0, +beta}.

    Args:
        feature_size: F (``pair_feature_size(H)`` for classification).
        hidden: width of the hidden layers.
        seed: initialise the weights from this seed (default: torch's global generator).
    """

    def __init__(self, feature_size: int, hidden: int = 32, seed: Optional[int] = None):
        super().__init__()
        self.feature_size = check_positive_int("feature_size", feature_size)
        self.hidden = check_positive_int("hidden", hidden)
        self.net = nn.Sequential(
            nn.Linear(self.feature_size, self.hidden), nn.Tanh(),
            nn.Linear(self.hidden, self.hidden), nn.Tanh(),
            nn.Linear(self.hidden, len(ACTIONS)),
        )
        generator = None if seed is None else torch.Generator().manual_seed(int(seed))
        with torch.no_grad():
            for layer in self.net[:-1]:
                if isinstance(layer, nn.Linear):
                    bound = 1.0 / math.sqrt(layer.in_features)
                    layer.weight.uniform_(-bound, bound, generator=generator)
                    layer.bias.uniform_(-bound, bound, generator=generator)
            self.net[-1].weight.zero_()
            self.net[-1].bias.zero_()

    @property
    def config(self) -> Dict[str, int]:
        return {"feature_size": self.feature_size, "hidden": self.hidden}

    def _check_features(self, features: torch.Tensor) -> None:
        check_finite_tensor("features", features)
        if features.dim() != 2 or features.shape[1] != self.feature_size:
            raise ControllerError(
                f"features have shape {tuple(features.shape)}; expected (P, {self.feature_size}) "
                f"for this policy's state size"
            )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Logits (P, 3) over ``ACTIONS``."""
        self._check_features(features)
        weight = self.net[0].weight
        return self.net(features.to(weight.device, weight.dtype))

    def log_prob(self, features: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``log pi(a_e | s_e)`` per element, (P,), for actions in {-1, 0, 1}."""
        index = _action_index(actions, features.shape[0] if features.dim() else -1)
        logp = torch.log_softmax(self(features), dim=-1)
        return logp.gather(-1, index.to(logp.device).unsqueeze(-1)).squeeze(-1)

    def entropy(self, features: torch.Tensor) -> torch.Tensor:
        """Mean per-element entropy of the policy (for logs)."""
        logp = torch.log_softmax(self(features), dim=-1)
        return -(logp.exp() * logp).sum(-1).mean()

    def act(self, features: torch.Tensor, generator: Optional[torch.Generator] = None,
            greedy: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
        """Sample an action per element.

        Sampling draws one uniform per element from ``generator`` (a CPU generator; default: the
        global one) and inverts the CDF on CPU, so the same seed gives the same actions on CPU and
        CUDA. ``greedy`` takes the most likely action instead.

        Returns:
            ``(actions, log_probs)``: (P,) long in {-1, 0, 1} on the features' device, and
            (P,) ``log pi(a_e | s_e)`` (differentiable when grad is enabled).
        """
        logp = torch.log_softmax(self(features), dim=-1)
        actions = sample_actions(logp, generator, greedy)
        log_probs = logp.gather(-1, (actions + 1).to(logp.device).unsqueeze(-1)).squeeze(-1)
        return actions.to(features.device), log_probs

    def log_prob_and_entropy(self, features: torch.Tensor, actions: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``log pi(a_e | s_e)`` (P,) and the per-element entropies (P,) from one forward."""
        index = _action_index(actions, features.shape[0] if features.dim() else -1)
        logp = torch.log_softmax(self(features), dim=-1)
        log_probs = logp.gather(-1, index.to(logp.device).unsqueeze(-1)).squeeze(-1)
        return log_probs, -(logp.exp() * logp).sum(-1)


PRIORS = ("none", "confusion")
PRIOR_LOGIT = 20.0  # the prior's action logits are +-PRIOR_LOGIT: P(chosen action) ~ 1 - 1e-8


def prior_policy(feature_size: int, hidden: int = 32, prior: str = "confusion", seed: int = 0,
                 threshold: float = 0.0, strength: float = PRIOR_LOGIT) -> PairPolicy:
    """A policy that starts from a rule instead of the uniform policy (``controller.policy_prior``).

    ``confusion``: "+" where the pair feature ``z(log C_ij)`` (column 0 of ``pair_features``: how
    little ``-log p_j`` class i's validation examples have, against the other pairs) is below
    about -0.3, i.e. where class i's examples put more than the usual probability on j, and "-"
    where it is above about 0.3 (two saturated tanh units; the other weights are zero); with
    ``threshold`` t the switch moves to ``z = -t`` (t > 0: only pairs confused far more than
    the others get "+"); ``strength`` is the action logits' size (20: near-deterministic, so
    REINFORCE barely moves it; ~2 leaves room to explore and learn). It knows
    no noise pattern: it reads the clean validation confusion every window, which under label
    noise points to the pairs the noise mixes (MNIST-1D, 40 % pair-flip, 5 seeds: +8.4 validation
    accuracy over CE with this rule fixed; results/tuning_ala.md).
    """
    if prior not in PRIORS:
        raise ControllerError(f"policy prior {prior!r}; expected one of {list(PRIORS)}")
    policy = PairPolicy(feature_size, hidden=hidden, seed=seed)
    if prior == "none":
        return policy
    if policy.hidden < 1:
        raise ControllerError(f"hidden={hidden}; the confusion prior needs at least one hidden unit")
    with torch.no_grad():
        for layer in policy.net:
            if isinstance(layer, nn.Linear):
                layer.weight.zero_()
                layer.bias.zero_()
        policy.net[0].weight[0, 0] = -10.0  # h1 = tanh(-10 (z + t)): +1 on pairs confused more than usual
        policy.net[0].bias[0] = -10.0 * float(threshold)
        policy.net[2].weight[0, 0] = 10.0  # h2 = tanh(10 h1), ~ +-1
        policy.net[4].weight[ACTIONS.index(1), 0] = float(strength)
        policy.net[4].weight[ACTIONS.index(-1), 0] = -float(strength)
    return policy


def sample_actions(logp: torch.Tensor, generator: Optional[torch.Generator] = None,
                   greedy: bool = False) -> torch.Tensor:
    """Actions (P,) long in {-1, 0, 1} from log-probabilities (P, 3) over ``ACTIONS``.

    One uniform per element from ``generator`` (a CPU generator; default: the global one), CDF
    inverted on CPU, so the same seed gives the same actions on CPU and CUDA. ``greedy``: arg-max.
    """
    if greedy:
        return logp.argmax(-1) - 1
    if generator is not None and generator.device.type != "cpu":
        raise ControllerError(f"generator on {generator.device}; expected a CPU generator")
    cdf = logp.detach().double().exp().cpu().cumsum(-1)
    u = torch.rand(logp.shape[0], generator=generator, dtype=torch.float64)
    return (u.unsqueeze(-1) >= cdf[:, :-1]).sum(-1).to(logp.device) - 1


def _action_index(actions: torch.Tensor, num_elements: int) -> torch.Tensor:
    if not isinstance(actions, torch.Tensor) or actions.is_floating_point() or actions.dim() != 1:
        raise ControllerError("actions must be a 1-D integer tensor with values in {-1, 0, 1}")
    if actions.shape[0] != num_elements:
        raise ControllerError(f"{actions.shape[0]} actions for {num_elements} elements; expected one per element")
    if actions.numel() and (actions.min() < -1 or actions.max() > 1):
        raise ControllerError(
            f"actions range over [{actions.min().item()}, {actions.max().item()}]; expected values in {{-1, 0, 1}}"
        )
    return actions.long() + 1


def controlled_tensor(target: Union[Phi, torch.Tensor]) -> torch.Tensor:
    """The tensor whose entries ALA moves: ``FullPhi.matrix``, ``BucketedPhi.B``, or a tensor."""
    if isinstance(target, FullPhi):
        return target.matrix
    if isinstance(target, BucketedPhi):
        return target.B
    if isinstance(target, torch.Tensor):
        return target
    kind = getattr(target, "parametrisation", type(target).__name__)
    raise ControllerError(
        f"ALA cannot act on a {kind!r} Phi; expected a 'full' or 'bucketed' Phi, or a tensor"
    )


@torch.no_grad()
def apply_actions(target: Union[Phi, torch.Tensor], pairs: torch.Tensor, actions: torch.Tensor,
                  beta: float, clamp: Optional[Sequence] = None,
                  allow_diagonal: bool = False) -> torch.Tensor:
    """``Phi[e] += beta * a_e`` for every controlled element, in place; then optional clamping.

    Args:
        target: a ``FullPhi`` (elements: ``matrix[i, j]``, ``i != j``), a ``BucketedPhi``
            (elements: ``B[g, h]``, including ``g == h``, which sets the within-bucket off-diagonal
            entries), or a tensor (2-D: indexed by pairs like a full Phi but diagonal allowed;
            1-D: ``pairs`` is (P,) indices).
        pairs: (P, 2) element indices ((P,) for a 1-D tensor), no duplicates.
        actions: (P,) in {-1, 0, 1}.
        beta: step size > 0.
        clamp: ``(low, high)``, floats or (P,) tensors (per-element bounds); the updated elements
            are clamped into it.
        allow_diagonal: a full Phi's diagonal entries ``(i, i)`` may be controlled too.
    Returns:
        (P,) the new values of the elements. Everything is validated before anything changes.
    """
    tensor = controlled_tensor(target)
    index = element_index(tensor, pairs, allow_diagonal or not isinstance(target, FullPhi))
    return move_elements(tensor, index, actions, beta, clamp)


def element_index(tensor: torch.Tensor, pairs, allow_diagonal: bool = True) -> Tuple[torch.Tensor, ...]:
    """Validated advanced index of the controlled elements of ``tensor``, for ``move_elements``.

    Args:
        tensor: the 1-D or 2-D controlled tensor.
        pairs: (P, 2) element indices ((P,) for a 1-D tensor), no duplicates.
        allow_diagonal: 2-D only: whether pairs ``(i, i)`` may be controlled.
    Returns:
        A tuple of (P,) long index tensors on ``tensor``'s device (one per axis).
    """
    pairs = torch.as_tensor(pairs)
    if pairs.is_floating_point():
        raise ControllerError(f"pairs have dtype {pairs.dtype}; expected integer indices")
    pairs = pairs.long().to(tensor.device)
    if tensor.dim() == 1:
        if pairs.dim() != 1:
            raise ControllerError(f"pairs have shape {tuple(pairs.shape)}; expected (P,) indices for a 1-D tensor")
        index = pairs.unsqueeze(-1)
    elif tensor.dim() == 2:
        if pairs.dim() != 2 or pairs.shape[1] != 2:
            raise ControllerError(f"pairs have shape {tuple(pairs.shape)}; expected (P, 2)")
        index = pairs
    else:
        raise ControllerError(f"controlled tensor has shape {tuple(tensor.shape)}; expected 1-D or 2-D")
    for axis in range(index.shape[1]):
        size = tensor.shape[axis]
        if index.numel() and (index[:, axis].min() < 0 or index[:, axis].max() >= size):
            raise ControllerError(
                f"element indices along axis {axis} range over [{index[:, axis].min().item()}, "
                f"{index[:, axis].max().item()}]; expected [0, {size})"
            )
    if tensor.dim() == 2 and not allow_diagonal and bool((index[:, 0] == index[:, 1]).any()):
        raise ControllerError("pairs include diagonal entries (i, i) of a full Phi; expected i != j")
    flat = index[:, 0] * (tensor.shape[1] if tensor.dim() == 2 else 1) + (index[:, 1] if tensor.dim() == 2 else 0)
    if flat.unique().numel() != flat.numel():
        raise ControllerError("pairs contain duplicate elements; expected each element at most once")
    return tuple(index.unbind(-1))


@torch.no_grad()
def move_elements(tensor: torch.Tensor, index: Tuple[torch.Tensor, ...], actions: torch.Tensor,
                  beta: float, clamp: Optional[Sequence] = None) -> torch.Tensor:
    """``tensor[index] += beta * actions``, then clamped into ``clamp``, in place.

    ``index`` comes from ``element_index`` (validated once: a controller reuses it every window).
    ``clamp``: ``(low, high)``, floats or (P,) tensors. Actions, beta and the clamp are validated
    before anything changes. Returns the (P,) new values.
    """
    beta = check_beta(beta)
    num = index[0].shape[0]
    steps = _action_index(actions, num).to(tensor.device) - 1
    low = high = None
    if clamp is not None:
        low, high = (torch.as_tensor(v, dtype=tensor.dtype, device=tensor.device) for v in clamp)
        if low.dim() and tuple(low.shape) != (num,) or high.dim() and tuple(high.shape) != (num,):
            raise ControllerError(f"clamp bounds have shapes {tuple(low.shape)}, {tuple(high.shape)}; "
                                  f"expected floats or ({num},) tensors")
        if not bool((low <= high).all()):
            shown = tuple(clamp) if not low.dim() else "per-element bounds"
            raise ControllerError(f"clamp={shown}; expected (low, high) with low <= high")
    values = tensor[index] + beta * steps.to(tensor.dtype)
    if clamp is not None:
        values = torch.minimum(torch.maximum(values, low), high)
    check_finite_tensor("updated Phi elements", values)
    tensor[index] = values
    return values.clone()
