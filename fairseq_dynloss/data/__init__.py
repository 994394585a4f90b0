"""Dataset preparation (toy corpus, ...)."""
