#!/usr/bin/env python
"""Write the toy parallel corpus (``--preset toy``: fairseq_dynloss/data/toy_corpus.py) or the
harder one (``--preset hard [--noise-rate R]``: fairseq_dynloss/data/toy_hard_corpus.py)."""

from fairseq_dynloss.data.toy_corpus import main

if __name__ == "__main__":
    main()
