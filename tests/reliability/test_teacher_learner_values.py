"""The teacher's learner refuses the values that made fairseq's translation_l2t fail silently
(issue 17, item 7): ``--inner-lr nan`` skipped every teacher step with rc 0, a negative
``--teacher-clip-norm`` clipped nothing."""

import math

import pytest

from fairseq_dynloss.teacher import TeacherLearner, build_teacher
from fairseq_dynloss.teacher.learner import inner_optimizer


@pytest.mark.parametrize("lr", [math.nan, math.inf, 0.0, -1e-3])
def test_a_bad_inner_learning_rate_is_refused(lr):
    with pytest.raises(ValueError, match=f"inner learning rate {lr}; expected a finite number > 0"):
        inner_optimizer("sgd", lr)


@pytest.mark.parametrize("lr, clip, message", [
    (math.nan, 1.0, "teacher learning rate nan"),
    (math.inf, 1.0, "teacher learning rate inf"),
    (1e-3, -1.0, "hypergradient clip norm -1.0; expected a finite number >= 0"),
    (1e-3, math.nan, "hypergradient clip norm nan"),
])
def test_a_bad_teacher_lr_or_clip_norm_is_refused(lr, clip, message):
    with pytest.raises(ValueError, match=message):
        TeacherLearner(build_teacher("gated", "full", 3, num_gates=1, hidden=4), lr=lr, clip_norm=clip)
