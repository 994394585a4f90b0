"""``dynloss-user-dir``: print the path to pass as ``fairseq-train --user-dir``.

fairseq resolves ``--user-dir`` as a filesystem path, so ``--user-dir fairseq_dynloss`` only works
from the repository root; anywhere else use ``--user-dir "$(dynloss-user-dir)"``.
"""

import os

USER_DIR = os.path.dirname(os.path.abspath(__file__))


def main() -> None:
    print(USER_DIR)


if __name__ == "__main__":
    main()
