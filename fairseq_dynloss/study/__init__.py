"""The results study (issue 8): seeded jobs, their statistics and the RESULTS.md report.

``stats`` (summaries and paired comparisons over seeds), ``jobs`` (a small dependency-aware, resumable parallel
runner of command lines) and ``report`` (markdown tables) are plain Python; what is run lives in
``scripts/study.py``.
"""
