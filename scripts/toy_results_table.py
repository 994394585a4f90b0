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


def parse_train_log(path):
    """Architecture, criterion arguments, final valid ppl, updates and wall time from a log."""
    text = open(path, encoding="utf-8").read()
    valid = re.findall(r"\| valid on 'valid' subset \|.*?\| ppl ([0-9.]+).*?\| num_updates (\d+)", text)
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
    print("| run | updates | valid ppl | test BLEU | train time (s) |")
    print("|---|---|---|---|---|")
    for name, log, score in rows:
        print(f"| {name} | {log['updates']} | {log['valid_ppl']:.2f} | {score:.2f} | {log['seconds']:.0f} |")
    print(f"\nsacrebleu signature: {signature}")


if __name__ == "__main__":
    main()
