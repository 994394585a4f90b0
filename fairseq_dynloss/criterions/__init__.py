"""fairseq criterions (thin adapters); importing this package registers them."""

from . import dynamic_loss  # noqa: F401  (registers "dynamic_loss")
from . import expected_bleu  # noqa: F401  (registers "expected_bleu")
from . import softmax_margin  # noqa: F401  (registers "softmax_margin")
from . import reinforce_bleu  # noqa: F401  (registers "reinforce_bleu")
from . import actor_critic_bleu  # noqa: F401  (registers "actor_critic_bleu")
