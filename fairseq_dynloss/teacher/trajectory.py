"""What a teacher does over a training run: Phi_t rows as the student's progress moves."""

from typing import Sequence

import torch

from ..losses.phi import Phi
from .models import Teacher
from .state import StudentState


@torch.no_grad()
def phi_rows_over_training(teacher: Teacher, phi: Phi, classes: Sequence[int], steps: int = 50,
                           train_loss_start: float = None, train_loss_end: float = None) -> torch.Tensor:
    """Rows ``Phi_t[classes, :]`` for ``steps`` points of progress t/T in [0, 1].

    The other state features follow a simple path: the training loss moves linearly from
    ``train_loss_start`` (default log C, a uniform prediction) to ``train_loss_end`` (default
    0.1 log C); no dev statistics; constant learning rate.

    Args:
        teacher: the teacher.
        phi: a Phi of the teacher's parametrisation (its tensors are overwritten).
        classes: class ids whose rows to return.
        steps: number of progress points.
    Returns:
        (steps, len(classes), C) tensor.
    """
    import math

    log_c = math.log(max(phi.num_classes, 2))
    start = log_c if train_loss_start is None else train_loss_start
    end = 0.1 * log_c if train_loss_end is None else train_loss_end
    horizon = 1000
    rows = []
    for k in range(steps):
        frac = k / max(steps - 1, 1)
        state = StudentState(num_updates=round(frac * horizon), horizon=horizon,
                             train_loss=start + frac * (end - start))
        phi.load_tensors(teacher(state.features(phi.num_classes)))
        rows.append(phi.rows(torch.as_tensor(list(classes))).clone())
    return torch.stack(rows)
