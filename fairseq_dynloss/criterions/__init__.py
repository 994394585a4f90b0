"""fairseq criterions (thin adapters); importing this package registers them."""

from . import dynamic_loss  # noqa: F401  (registers "dynamic_loss")
