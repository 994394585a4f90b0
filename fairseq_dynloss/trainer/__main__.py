"""``python -m fairseq_dynloss.trainer`` (what ``torchrun -m`` runs)."""

from .cli import main

main()
