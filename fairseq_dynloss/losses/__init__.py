"""Pure-torch loss functions (no fairseq import): the dynamic loss and its Phi."""

from .dynamic import FORMS, DynamicLossOutput, dynamic_loss
from .phi import (
    PARAMETRISATIONS,
    BucketedPhi,
    DiagLowRankPhi,
    FullPhi,
    Phi,
    PhiError,
    build_phi,
    default_scale,
    frequency_buckets,
    load_phi_file,
    save_phi,
)
from .prob_form import check_prob_tensors, log_col_dot, phi_from_logits

__all__ = [
    "PARAMETRISATIONS", "BucketedPhi", "DiagLowRankPhi", "DynamicLossOutput", "FullPhi", "Phi",
    "PhiError", "build_phi", "default_scale", "dynamic_loss", "frequency_buckets",
    "load_phi_file", "save_phi", "FORMS", "check_prob_tensors", "log_col_dot", "phi_from_logits",
]

from .lsoftmax import chebyshev_cos_multiple, lsoftmax_logits  # noqa: E402
from .self_paced import self_paced_loss, self_paced_threshold, self_paced_weights  # noqa: E402

__all__ += [
    "chebyshev_cos_multiple", "lsoftmax_logits", "self_paced_loss", "self_paced_threshold",
    "self_paced_weights",
]
