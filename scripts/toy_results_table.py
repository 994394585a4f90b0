#!/usr/bin/env python
"""Print the toy study's results table (markdown) from the files the toy recipes write.

    python scripts/toy_results_table.py --work work/toy transformer_ce transformer_dynamic ...

For each run NAME it reads ``WORK/results/NAME.bleu.json`` (sacrebleu) and
``WORK/logs/NAME.train.log`` (fairseq-train, ``--log-format simple``).
"""

import argparse
import json
import os
import re
import statistics


def parse_train_log(path):
    """Architecture, criterion arguments, final valid ppl, updates and wall time from a log."""
    text = open(path, encoding="utf-8").read()
    valid = re.findall(r"\| valid on 'valid' subset \|.*?\| ppl ([0-9.]+(?:e[+-]?\d+)?).*?\| num_updates (\d+)", text)
    done = re.search(r"done training in ([0-9.]+) seconds", text)
    criterion = re.search(r"criterion: (\w+)", text)
    return {
        "valid_ppl": float(valid[-1][0]) if valid else float("nan"),
        "updates": int(valid[-1][1]) if valid else 0,
        "seconds": float(done.group(1)) if done else float("nan"),
        "criterion": criterion.group(1) if criterion else "?",
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", required=True)
    parser.add_argument("--group-seeds", action="store_true",
                        help="group runs named PREFIX_seedN and print mean +- std over seeds")
    parser.add_argument("names", nargs="+")
    args = parser.parse_args()
    rows, signature = [], None
    for name in args.names:
        bleu_path = os.path.join(args.work, "results", f"{name}.bleu.json")
        log_path = os.path.join(args.work, "logs", f"{name}.train.log")
        if not (os.path.isfile(bleu_path) and os.path.isfile(log_path)):
            raise SystemExit(f"toy_results_table: missing {bleu_path} or {log_path}; run the recipe first")
        bleu = json.load(open(bleu_path))
        signature = bleu["signature"]
        rows.append((name, parse_train_log(log_path), bleu["score"]))
    if args.group_seeds:
        print_grouped(rows)
    else:
        print("| run | updates | valid ppl | test BLEU | train time (s) |")
        print("|---|---|---|---|---|")
        for name, log, score in rows:
            print(f"| {name} | {log['updates']} | {log['valid_ppl']:.4g} | {score:.2f} | {log['seconds']:.0f} |")
    print(f"\nsacrebleu signature: {signature}")


def print_grouped(rows):
    """One line per PREFIX of runs named PREFIX_seedN: mean +- sample std over the seeds."""
    groups = {}
    for name, log, score in rows:
        prefix, _, seed = name.rpartition("_seed")
        if not prefix or not seed.isdigit():
            raise SystemExit(f"toy_results_table: run {name!r} is not named PREFIX_seedN")
        groups.setdefault(prefix, []).append((log, score))

    def mean_std(values):
        mean = statistics.fmean(values)
        return mean, (statistics.stdev(values) if len(values) > 1 else float("nan"))

    print("| runs | seeds | test BLEU mean +- std | valid ppl mean +- std | train time (s) |")
    print("|---|---|---|---|---|")
    for prefix, items in groups.items():
        bleu = mean_std([score for _, score in items])
        ppl = mean_std([log["valid_ppl"] for log, _ in items])
        seconds = statistics.fmean(log["seconds"] for log, _ in items)
        print(f"| {prefix} | {len(items)} | {bleu[0]:.2f} +- {bleu[1]:.2f} | {ppl[0]:.4g} +- {ppl[1]:.3g} | {seconds:.0f} |")


if __name__ == "__main__":
    main()
