"""Teacher models mu_theta(s_t) -> Phi_t in any Phi parametrisation (L2T-DLF, docs/design.md §3.2).

A teacher returns the *tensors* of a Phi (``{"matrix"}`` for full, ``{"diag", "U", "V"}`` for
diag_lowrank, ``{"diag", "B"}`` for bucketed), which ``dynamic_loss(..., phi_tensors=...)``
uses in place of the Phi's own; gradients flow from the student's loss back into theta.

* ``GatedTeacher`` -- the official demo's form generalised (``Phi_t = W + h_t W2``):
  ``Phi_t = Phi_0 + sum_k h_k(s_t) Phi_k`` with ``h = tanh(MLP(s_t))`` (K gates) and every
  ``Phi_k`` a full tensor set of the parametrisation. ``Phi_0`` starts at the identity and the
  ``Phi_k`` at small random values, so an untrained teacher is close to ``Phi = I``.
* ``BilinearTeacher`` -- class (or bucket) embeddings ``E`` (n, d) and a state-conditioned
  bilinear map ``M(s_t) = sum_k h_k(s_t) M_k`` (d, d):
  ``Phi_t = I + E M(s_t) E^T``. For diag_lowrank that is ``U = E M, V = E`` (rank d); for
  bucketed ``B = E M E^T`` over the G buckets; never a C x C matrix except for ``full``.
* ``LrScaleTeacher`` -- a control: Phi stays the identity and only a scalar learning-rate
  multiplier ``exp(log_lr_scale)`` is learned, by the same machinery (online mode).

``form="prob"`` (gated, every parametrisation): Phi_t must be non-negative for the probability form
of the loss; the teacher then moves raw logits and mixing logits ``a(s_t)`` and maps them through
``losses.phi_from_logits``' parametrisation, ``(1 - m_i) e_i + m_i softmax(L_i)``, m = sigmoid(a)
(for diag_lowrank and bucketed: ``teacher/prob_tensors.py``): near the identity (cross-entropy)
at init (base a = -5, m = 0.007), never stuck there (a clamp to [0, 1] was: once every m(s_t)
went below 0 no gradient reached a or the gates again; measured on noisy MNIST-1D), and the
gates get gradient at init.

``fixed_diagonal=True`` (gated, bilinear) pins Phi's diagonal to 1: a teacher can then change the
loss only through the off-diagonal entries, not scale it (the other control).
"""

from typing import Dict, Optional

import torch
from torch import nn

from ..losses.phi import PARAMETRISATIONS, PhiError
from .prob_tensors import prob_phi_tensors, prob_raw_init, prob_raw_shapes
from .state import STATE_FEATURES


def phi_tensor_shapes(parametrisation: str, num_classes: int, rank: int, num_buckets: int) -> Dict[str, tuple]:
    """Shapes of the tensors that define a Phi of this parametrisation."""
    if parametrisation == "full":
        return {"matrix": (num_classes, num_classes)}
    if parametrisation == "diag_lowrank":
        return {"diag": (num_classes,), "U": (num_classes, rank), "V": (num_classes, rank)}
    if parametrisation == "bucketed":
        return {"diag": (num_classes,), "B": (num_buckets, num_buckets)}
    raise PhiError(f"unknown Phi parametrisation {parametrisation!r}; expected one of {list(PARAMETRISATIONS)}")


def _identity(name: str, shape: tuple) -> torch.Tensor:
    if name == "matrix":
        return torch.eye(shape[0])
    if name == "diag":
        return torch.ones(shape)
    return torch.zeros(shape)


class Teacher(nn.Module):
    """Common configuration and (de)serialisation of teachers.

    Args:
        parametrisation: of the Phi it produces.
        num_classes: C.
        rank: r of diag_lowrank (ignored otherwise).
        num_buckets: G of bucketed (ignored otherwise).
        num_gates: K, number of state-dependent components.
        hidden: width of the state MLP.
    """

    kind = ""

    def __init__(self, parametrisation: str, num_classes: int, rank: int = 32, num_buckets: int = 8,
                 num_gates: int = 4, hidden: int = 32, seed: int = 0, fixed_diagonal: bool = False,
                 form: str = "paper"):
        super().__init__()
        for name, value in (("num_classes", num_classes), ("num_gates", num_gates), ("hidden", hidden)):
            if not isinstance(value, int) or value <= 0:
                raise PhiError(f"teacher {name}={value!r}; expected a positive integer")
        self.shapes = phi_tensor_shapes(parametrisation, num_classes, rank, num_buckets)
        self.config = dict(kind=self.kind, parametrisation=parametrisation, num_classes=num_classes,
                           rank=rank if parametrisation == "diag_lowrank" else None,
                           num_buckets=num_buckets if parametrisation == "bucketed" else None,
                           num_gates=num_gates, hidden=hidden, features=list(STATE_FEATURES),
                           fixed_diagonal=bool(fixed_diagonal), form=form, seed=int(seed))
        if form not in ("paper", "prob"):
            raise PhiError(f"teacher form={form!r}; expected 'paper' or 'prob'")
        # Seeded initialisation: the same arguments always give the same teacher.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.gates = nn.Sequential(nn.Linear(len(STATE_FEATURES), hidden), nn.Tanh(),
                                       nn.Linear(hidden, num_gates), nn.Tanh())

    @property
    def parametrisation(self) -> str:
        return self.config["parametrisation"]

    @property
    def num_classes(self) -> int:
        return self.config["num_classes"]

    def forward(self, features: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Phi_t tensors for state features ``features`` (len(STATE_FEATURES),)."""
        raise NotImplementedError

    def _pin_diagonal(self, tensors: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """With ``fixed_diagonal``: Phi's diagonal set to 1 (``matrix``) / the ``diag`` tensor to ones."""
        if not self.config["fixed_diagonal"]:
            return tensors
        out = dict(tensors)
        if "matrix" in out:
            m = out["matrix"]
            out["matrix"] = m - torch.diag_embed(m.diagonal()) + torch.eye(m.shape[0], dtype=m.dtype, device=m.device)
        if "diag" in out:
            out["diag"] = torch.ones_like(out["diag"])
        return out


class GatedTeacher(Teacher):
    """``Phi_t = Phi_0 + sum_k h_k(s_t) Phi_k`` (see the module docstring)."""

    kind = "gated"

    def __init__(self, *args, init_std: float = 0.01, seed: int = 0, **kwargs):
        super().__init__(*args, seed=seed, **kwargs)
        generator = torch.Generator().manual_seed(seed + 1)
        k = self.config["num_gates"]
        prob = self.config["form"] == "prob"
        c = self.config
        # prob: raw logits (zeros: uniform rows) and mixing logits a (sigmoid(-5): Phi ~ I)
        shapes = prob_raw_shapes(self.parametrisation, c["num_classes"], c["rank"], c["num_buckets"]) if prob \
            else self.shapes
        base = {n: (prob_raw_init if prob else _identity)(n, s) for n, s in shapes.items()}
        self.base = nn.ParameterDict({n: nn.Parameter(v) for n, v in base.items()})
        self.components = nn.ParameterDict({
            n: nn.Parameter(init_std * torch.randn((k, *s), generator=generator)) for n, s in shapes.items()
        })

    def forward(self, features):
        h = self.gates(features.to(next(self.parameters()).dtype))  # (K,)
        values = {n: self.base[n] + torch.tensordot(h, self.components[n], dims=1) for n in self.base}
        if self.config["form"] == "prob":
            values = prob_phi_tensors(self.parametrisation, values)
        return self._pin_diagonal(values)


class BilinearTeacher(Teacher):
    """``Phi_t = I + E M(s_t) E^T`` with embeddings E and ``M(s) = sum_k h_k(s) M_k``.

    Args:
        dim: d, embedding size; default 16, or the rank for diag_lowrank (which it must equal).
    """

    kind = "bilinear"

    def __init__(self, *args, dim: Optional[int] = None, init_std: float = 0.1, seed: int = 0, **kwargs):
        super().__init__(*args, seed=seed, **kwargs)
        p = self.parametrisation
        if self.config["form"] != "paper":  # I + E M E^T has entries of any sign
            raise PhiError(f"a bilinear teacher outputs a paper-form Phi only; got form={self.config['form']!r} "
                           "(use the gated teacher for the prob form)")
        if dim is None:
            dim = self.config["rank"] if p == "diag_lowrank" else 16
        if p == "diag_lowrank" and dim != self.config["rank"]:
            raise PhiError(f"bilinear teacher dim={dim} must equal the diag_lowrank rank {self.config['rank']}")
        self.config["dim"] = dim
        rows = self.config["num_buckets"] if p == "bucketed" else self.num_classes
        generator = torch.Generator().manual_seed(seed + 1)
        self.embeddings = nn.Parameter(init_std * torch.randn(rows, dim, generator=generator))
        self.maps = nn.Parameter(init_std * torch.randn(self.config["num_gates"], dim, dim, generator=generator))

    def forward(self, features):
        h = self.gates(features.to(self.embeddings.dtype))
        mixing = torch.tensordot(h, self.maps, dims=1)  # (d, d)
        e = self.embeddings
        p = self.parametrisation
        if p == "full":
            return self._pin_diagonal(
                {"matrix": torch.eye(self.num_classes, dtype=e.dtype, device=e.device) + e @ mixing @ e.t()})
        diag = torch.ones(self.num_classes, dtype=e.dtype, device=e.device)
        if p == "diag_lowrank":
            return {"diag": diag, "U": e @ mixing, "V": e}
        return {"diag": diag, "B": e @ mixing @ e.t()}


class LrScaleTeacher(Teacher):
    """The step-size control: Phi = I always; the only learned quantity is ``log_lr_scale``
    (0-d, starts at 0), the log of a multiplier of the student's learning rate.

    Its state MLP exists (the common configuration) but is not used.
    """

    kind = "lr_scale"

    def __init__(self, *args, seed: int = 0, **kwargs):
        super().__init__(*args, seed=seed, **kwargs)
        self.gates.requires_grad_(False)
        self.log_lr_scale = nn.Parameter(torch.zeros(()))

    def lr_multiplier(self) -> torch.Tensor:
        """exp(log_lr_scale), 0-d."""
        return self.log_lr_scale.exp()

    def forward(self, features):
        dtype, device = self.log_lr_scale.dtype, self.log_lr_scale.device
        return {n: _identity(n, s).to(dtype=dtype, device=device) for n, s in self.shapes.items()}


TEACHERS = {cls.kind: cls for cls in (GatedTeacher, BilinearTeacher, LrScaleTeacher)}


def build_teacher(kind: str, parametrisation: str, num_classes: int, **kwargs) -> Teacher:
    """A teacher by name (``gated``, ``bilinear`` or ``lr_scale``)."""
    if kind not in TEACHERS:
        raise PhiError(f"unknown teacher kind {kind!r}; expected one of {sorted(TEACHERS)}")
    return TEACHERS[kind](parametrisation, num_classes, **kwargs)
