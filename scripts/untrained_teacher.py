"""Write the untrained version of a teacher file: the control that separates what an L2T-DLF
teacher learned from what its starting point already does.

The output has the trained teacher's kind, sizes, loss form and horizon, and the weights it had
before its first step (the initialisation of its seed). Deploy it exactly as the trained one:

    python scripts/untrained_teacher.py checkpoints/l2t_teacher/teacher.pt teacher_untrained.pt
    fairseq-train ... --criterion dynamic_loss --phi-source teacher --teacher-path teacher_untrained.pt

Teacher files written before the seed was recorded need ``--seed`` (translation_l2t's
``--teacher-seed``, default 1).
"""

from __future__ import annotations

import argparse
import sys

from fairseq_dynloss.losses import PhiError
from fairseq_dynloss.teacher import save_teacher, untrained_teacher


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("trained", help="teacher file written by translation_l2t or dynloss-train")
    parser.add_argument("out", help="where to write the untrained teacher")
    parser.add_argument("--seed", type=int, default=None,
                        help="initialisation seed, for files that do not record theirs")
    args = parser.parse_args(argv)
    try:
        teacher = untrained_teacher(args.trained, args.seed)
    except PhiError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    save_teacher(teacher, args.out)
    print(f"wrote {args.out}: the {teacher.config['kind']} teacher of {args.trained} untrained "
          f"(seed {teacher.config['seed']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
