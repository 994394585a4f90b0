"""Hypergradients through unrolled inner optimisation (docs/design.md §3.3). Pure torch.

``hypergradient`` differentiates an outer loss at omega_T with respect to hyper-parameters that
feed the inner loss (and optionally the learning rate), through T functional optimiser steps,
exactly and with bounded memory (checkpointing, truncation). ``FunctionalModule`` turns an
``nn.Module`` student into a function of a parameter dict.
"""

from .functional import FunctionalModule, restored_slots
from .hypergradient import HypergradientResult, NonFiniteHypergradientError, hypergradient
from .kernels import double_backward_kernels
from .naive import naive_hypergradient
from .optimizers import SGD, Adam, AdamW, InnerOptimizer
from .twin import NoFunctionalTwinError, functional_twin

__all__ = [
    "SGD",
    "Adam",
    "AdamW",
    "FunctionalModule",
    "HypergradientResult",
    "InnerOptimizer",
    "NoFunctionalTwinError",
    "NonFiniteHypergradientError",
    "double_backward_kernels",
    "functional_twin",
    "hypergradient",
    "naive_hypergradient",
    "restored_slots",
]
