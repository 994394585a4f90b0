"""Hydra config groups of dynloss-train (a package so that Hydra finds it when installed)."""
