"""The results study (issue 8): seeded jobs, their statistics and the RESULTS.md report.

``stats`` (mean, std, Welch's t-test), ``jobs`` (a small dependency-aware, resumable parallel
runner of command lines) and ``report`` (markdown tables) are plain Python; what is run lives in
``scripts/study.py``.
"""
