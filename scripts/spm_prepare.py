#!/usr/bin/env python
"""Train one joint sentencepiece model on the training text and encode every split.

    python scripts/spm_prepare.py --raw RAW --out OUT --src src --tgt tgt --vocab-size 200

reads ``RAW/{train,valid,test}.{src,tgt}`` and writes ``OUT/spm.model`` and
``OUT/{split}.{lang}`` (space-separated pieces) ready for ``fairseq-preprocess``.
Decode with ``fairseq-generate --post-process sentencepiece``.
"""

import argparse
import os

import sentencepiece as spm


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--raw", required=True, help="folder with {split}.{lang} text files")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--src", default="src")
    parser.add_argument("--tgt", default="tgt")
    parser.add_argument("--splits", default="train,valid,test")
    parser.add_argument("--vocab-size", type=int, default=200)
    parser.add_argument("--model-type", default="unigram", choices=["unigram", "bpe"])
    args = parser.parse_args(argv)

    splits = args.splits.split(",")
    paths = {(s, l): os.path.join(args.raw, f"{s}.{l}") for s in splits for l in (args.src, args.tgt)}
    missing = [p for p in paths.values() if not os.path.isfile(p)]
    if missing:
        raise SystemExit(f"spm_prepare: missing input files {missing}")
    os.makedirs(args.out, exist_ok=True)
    prefix = os.path.join(args.out, "spm")
    spm.SentencePieceTrainer.train(
        input=",".join(paths[("train", l)] for l in (args.src, args.tgt)),
        model_prefix=prefix,
        vocab_size=args.vocab_size,
        model_type=args.model_type,
        character_coverage=1.0,
        hard_vocab_limit=False,  # tiny corpora may have fewer possible pieces
        num_threads=1,
        minloglevel=2,
        # fairseq adds its own <s> <pad> </s> <unk>; keep sentencepiece's ids out of the text.
        bos_id=-1, eos_id=-1, unk_id=0,
    )
    processor = spm.SentencePieceProcessor(model_file=prefix + ".model")
    for (split, lang), path in paths.items():
        with open(path, encoding="utf-8") as handle:
            lines = [line.rstrip("\n") for line in handle]
        out_path = os.path.join(args.out, f"{split}.{lang}")
        with open(out_path + ".tmp", "w", encoding="utf-8") as handle:
            for pieces in processor.encode(lines, out_type=str):
                handle.write(" ".join(pieces) + "\n")
        os.replace(out_path + ".tmp", out_path)
    print(f"[spm] vocab {args.vocab_size} ({args.model_type}) -> {prefix}.model; encoded {len(paths)} files")


if __name__ == "__main__":
    main()
