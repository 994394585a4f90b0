"""fairseq tasks of the plugin (fairseq imports this folder of a --user-dir by itself)."""

from . import translation_l2t  # noqa: F401  (registers "translation_l2t")
from . import translation_ala  # noqa: F401  (registers "translation_ala")
