"""Non-negative Phi tensors for a prob-form teacher, in every parametrisation.

The prob form ``l = -log (p^T M)_y`` needs ``M >= 0`` (``losses/prob_form.py``). A teacher moves
unconstrained *raw* tensors and maps them through the parametrisation of
``losses.phi_from_logits``, ``(1 - m_i) e_i + m_i softmax(L_i)`` with ``m = sigmoid(a)``: rows
that keep most of their weight on the class itself and spread ``m_i`` over a distribution.

==============  =======================================  ============================================
parametrisation raw tensors                              Phi tensors (all >= 0)
==============  =======================================  ============================================
``full``        ``logits`` (C, C), ``mix`` (C,)          ``matrix = phi_from_logits(logits, m)``
``diag_lowrank`` ``mix`` (C,), ``U_logits``, ``V_logits`` ``diag = 1 - m``, ``U = m_j softmax_r(U_j)``,
                (C, r)                                   ``V = softmax_C(V_logits)`` (columns)
``bucketed``    ``mix`` (C,), ``B_logits`` (G, G),        ``diag = 1 - m``,
                ``B_mix`` (G,)                            ``B = b_g softmax(B_logits_g)``, b = sigmoid
==============  =======================================  ============================================

* ``diag_lowrank``: row j of ``diag(d) + U V^T`` is ``(1 - m_j) e_j + m_j sum_k pi_jk q_k`` with
  ``pi_j = softmax(U_logits_j)`` over the r components and ``q_k`` (column k of V) a distribution
  over the classes: ``phi_from_logits`` with its row distribution ``softmax(L_j)`` replaced by a
  mixture of r shared ones. Rows sum to 1, as a noise matrix's.
* ``bucketed``: ``B`` is the off-identity part ``b_g softmax(B_logits_g)`` of
  ``phi_from_logits(B_logits, b)`` over the G buckets, read with the prob form's per-bucket *mean*
  semantics (``BucketedPhi.col_dot``): ``B[g, h]`` is how much the mean probability of bucket g
  counts as predicting a label of bucket h, whatever the buckets' sizes.

At ``a = MIX_INIT`` (the base value) and zero logits, Phi is the prob-form value nearest the
identity that keeps gradient: ``m = sigmoid(-5) = 0.0067`` (``M = I`` exactly would need
``m = 0``, the minimum of a non-negative map, where its gradient is zero: the saddle the
authors' demo starts at). Every mixing weight then has a non-zero gradient.
"""

from typing import Dict

import torch

from ..losses.phi import PARAMETRISATIONS, PhiError
from ..losses.prob_form import phi_from_logits

MIX_INIT = -5.0  # initial mixing logit, sigmoid(-5) = 0.0067 of each row off the identity


def prob_raw_shapes(parametrisation: str, num_classes: int, rank: int, num_buckets: int) -> Dict[str, tuple]:
    """Shapes of the raw (unconstrained) tensors of a prob-form teacher (module table)."""
    c = num_classes
    if parametrisation == "full":
        return {"logits": (c, c), "mix": (c,)}
    if parametrisation == "diag_lowrank":
        return {"mix": (c,), "U_logits": (c, rank), "V_logits": (c, rank)}
    if parametrisation == "bucketed":
        return {"mix": (c,), "B_logits": (num_buckets, num_buckets), "B_mix": (num_buckets,)}
    raise PhiError(f"unknown Phi parametrisation {parametrisation!r}; expected one of {list(PARAMETRISATIONS)}")


def prob_raw_init(name: str, shape: tuple) -> torch.Tensor:
    """The raw tensor's initial value: mixing logits at ``MIX_INIT``, other logits 0 (uniform)."""
    if name in ("mix", "B_mix"):
        return torch.full(shape, MIX_INIT)
    return torch.zeros(shape)


def prob_phi_tensors(parametrisation: str, raw: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """The Phi tensors (non-negative by construction) of the raw tensors (module table).

    Differentiable in every raw tensor. ``diag = 1 - sigmoid(a)`` is computed as ``sigmoid(-a)``
    (no cancellation when ``sigmoid(a)`` is near 1).
    """
    if parametrisation == "full":
        return {"matrix": phi_from_logits(raw["logits"], torch.sigmoid(raw["mix"]))}
    if parametrisation == "diag_lowrank":
        m = torch.sigmoid(raw["mix"])
        return {"diag": torch.sigmoid(-raw["mix"]), "U": m.unsqueeze(-1) * torch.softmax(raw["U_logits"], dim=-1),
                "V": torch.softmax(raw["V_logits"], dim=0)}
    if parametrisation == "bucketed":
        b = torch.sigmoid(raw["B_mix"])
        rows = phi_from_logits(raw["B_logits"], b)  # (1 - b_g) e_g + b_g softmax(B_logits_g)
        # Its off-identity part b_g softmax(.): fl(fl(x + y) - x) >= 0 for x, y >= 0, so B stays >= 0.
        return {"diag": torch.sigmoid(-raw["mix"]), "B": rows - torch.diag_embed(1 - b)}
    raise PhiError(f"unknown Phi parametrisation {parametrisation!r}; expected one of {list(PARAMETRISATIONS)}")
