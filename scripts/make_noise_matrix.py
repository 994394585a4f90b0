"""Write a random sparse asymmetric label-noise matrix as CSV, for ``task.label_noise.kind=matrix``.

Each class keeps ``1 - rate`` of its labels and sends ``rate`` to 1..``--max-targets`` other classes
chosen at random (seeded): a noise structure that is neither symmetric nor pair-flip, to test
methods on a pattern they were not developed on.

    python scripts/make_noise_matrix.py noise_sparse.csv --classes 10 --rate 0.4 --seed 0
    dynloss-train task=mnist1d model=mnist1d_mlp task.label_noise.kind=matrix \
        task.label_noise.matrix=$PWD/noise_sparse.csv
"""

from __future__ import annotations

import argparse

from fairseq_dynloss.data.label_noise import random_sparse_noise_matrix, write_noise_matrix


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", help="CSV file to write (C rows of C numbers)")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--rate", type=float, default=0.4, help="probability a label changes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-targets", type=int, default=2,
                        help="most other classes a class flips to")
    args = parser.parse_args(argv)
    T = random_sparse_noise_matrix(args.classes, args.rate, args.seed, args.max_targets)
    write_noise_matrix(args.path, T)
    print(f"wrote {args.path}: {args.classes} classes, rate {args.rate}, seed {args.seed}")


if __name__ == "__main__":
    main()
