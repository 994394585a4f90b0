"""Small heads on the decoder state owned by a criterion (learned baselines, critics).

fairseq's trainer optimises ``criterion.parameters()`` together with the model's
(``Trainer._build_optimizer``), saves them in checkpoints, and wraps a criterion that has
parameters in DDP, so a head here trains and synchronises like a model parameter. The input
size must be given (the criterion is built before it sees the model) and is checked at use.
"""

import torch


def build_state_head(state_dim: int, out_dim: int, option: str) -> torch.nn.Linear:
    """A zero-initialised ``nn.Linear(state_dim, out_dim)``: it predicts 0 until trained."""
    if not isinstance(state_dim, int) or state_dim < 1:
        raise ValueError(
            f"{option}={state_dim!r}; expected the decoder's output dimension (an integer >= 1, "
            "e.g. the value of --decoder-embed-dim)"
        )
    head = torch.nn.Linear(state_dim, out_dim)
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    return head


def check_state_dim(states: torch.Tensor, state_dim: int) -> None:
    """Raise ValueError when the decoder states do not have ``state_dim`` features."""
    if states.size(-1) != state_dim:
        raise ValueError(
            f"--decoder-state-dim={state_dim} but the decoder states have {states.size(-1)} "
            f"features; expected --decoder-state-dim {states.size(-1)}"
        )
