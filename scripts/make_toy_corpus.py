#!/usr/bin/env python
"""Write the toy parallel corpus (see fairseq_dynloss/data/toy_corpus.py)."""

from fairseq_dynloss.data.toy_corpus import main

if __name__ == "__main__":
    main()
