"""ALA (adaptive loss alignment) controllers, pure torch (docs/design.md §3.4).

* ``state``     -- validation statistics -> controller inputs (confusion state, pair features,
                   metric-learning distance statistics).
* ``policy``    -- the policy shared by all controlled elements, beta scaling, Phi updates.
* ``reward``    -- discounted window metric and the direction-aware sign reward.
* ``memory``    -- replay memory of ``<s, a, r, s'>`` from one or several child models.
* ``reinforce`` -- one-step REINFORCE (on-policy or importance-weighted replay), per-step
                   baseline, entropy bonus; controller files.
* ``targets``   -- what a controller acts on: class pairs of Phi, or metric-learning loss
                   parameters (state, features and updates of each).
* ``exchange``  -- multi-network ALA: all-gather of the children's transitions.
* ``window``    -- the window controller of one child (reward, transitions, policy step, action,
                   log, state dict), used by ``dynloss-train`` and ``translation_ala``.
"""

from .errors import ControllerError
from .exchange import gather_transitions
from .memory import ReplayMemory, Transition
from .policy import (
    ACTIONS, PRIORS, PairPolicy, apply_actions, beta_for, check_beta, controlled_tensor, prior_policy,
    sample_actions,
)
from .reinforce import LoadedController, ReinforceLearner, load_controller, save_controller
from .reward import (
    METRIC_DIRECTION, ClassCredit, WindowReward, check_gamma, check_window, class_means, discounted_window_metric,
    higher_is_better, measures_metric, reward, sampled_window,
)
from .state import (
    ConfusionAccumulator, StateHistory, confusion_state, controlled_pairs, distance_statistics,
    element_features, pair_distances, pair_feature_size, pair_features,
)
from .targets import ElementTarget, PairTarget, element_feature_size
from .window import CREDITS, STATE_SOURCES, WindowController, write_rows

__all__ = [
    "ACTIONS", "CREDITS", "ClassCredit", "class_means", "PRIORS", "prior_policy", "METRIC_DIRECTION", "STATE_SOURCES", "WindowController", "write_rows", "ConfusionAccumulator", "ControllerError", "ElementTarget",
    "LoadedController", "PairPolicy", "PairTarget", "ReinforceLearner", "ReplayMemory",
    "StateHistory", "Transition", "WindowReward", "apply_actions", "beta_for", "check_beta",
    "check_gamma", "check_window", "measures_metric", "sampled_window", "confusion_state", "controlled_pairs", "controlled_tensor",
    "discounted_window_metric", "distance_statistics", "element_feature_size", "element_features",
    "gather_transitions", "higher_is_better", "load_controller", "pair_distances",
    "pair_feature_size", "pair_features", "reward", "sample_actions", "save_controller",
]
