"""L2T-DLF teachers (pure torch): student-state features s_t and models mu_theta(s_t) -> Phi_t."""

from .io import load_teacher, save_teacher, untrained_teacher
from .learner import TeacherLearner, TeacherStepResult, inner_optimizer
from .models import TEACHERS, BilinearTeacher, GatedTeacher, Teacher, build_teacher, phi_tensor_shapes
from .state import (
    EMA_DECAY, STATE_FEATURES, ExponentialAverage, NonFiniteStateError, StudentState, StudentStateTracker,
)

__all__ = [
    "EMA_DECAY", "STATE_FEATURES", "TEACHERS", "BilinearTeacher", "ExponentialAverage", "GatedTeacher",
    "NonFiniteStateError", "StudentState", "StudentStateTracker", "Teacher", "TeacherLearner", "TeacherStepResult", "inner_optimizer", "build_teacher", "load_teacher", "phi_tensor_shapes", "save_teacher", "untrained_teacher",
]
