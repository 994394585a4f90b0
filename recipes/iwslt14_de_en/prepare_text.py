#!/usr/bin/env python
"""The IWSLT'14 De-En release (``de-en/`` of ``de-en.tgz``) -> raw parallel text, standard split.

    python prepare_text.py --orig ORIG/de-en --out RAW [--lowercase] [--max-len 175] [--ratio 1.5]

writes ``RAW/{train,valid,test}.{de,en}`` with the split of fairseq's
``examples/translation/prepare-iwslt14.sh`` (from MIXER's ``prepareData.sh``):

* train: ``train.tags.de-en.{de,en}`` without the ``<url>``, ``<talkid>`` and ``<keywords>``
  lines and the ``<title>`` / ``<description>`` tags; pairs kept as Moses'
  ``clean-corpus-n.perl -ratio 1.5 ... 1 175`` keeps them (1 to 175 words a side, length ratio at
  most 1.5); every 23rd remaining pair goes to valid, the others to train;
* test: the ``<seg>`` lines of IWSLT14.TED.dev2010, IWSLT14.TEDX.dev2012 and
  IWSLT14.TED.tst2010-2012, in that order;
* all of it lowercased with ``--lowercase`` (as that script does).

Unlike that script the text is not Moses-tokenised: sentencepiece (``scripts/spm_prepare.py``)
reads raw text and sacrebleu scores detokenised output, so counts differ slightly from the
tokenised split (160239 / 7283 / 6750 pairs).
"""

import argparse
import os
import re

LANGS = ("de", "en")
TRAIN = "train.tags.de-en.{lang}"
TEST_SETS = ("IWSLT14.TED.dev2010", "IWSLT14.TEDX.dev2012", "IWSLT14.TED.tst2010",
             "IWSLT14.TED.tst2011", "IWSLT14.TED.tst2012")
VALID_EVERY = 23
DROPPED_TAGS = ("<url>", "<talkid>", "<keywords>")
STRIPPED_TAGS = re.compile(r"</?(title|description)>")
SEGMENT = re.compile(r'<seg id="?\d+"?>\s*(.*?)\s*</seg>')


def read_lines(path):
    if not os.path.isfile(path):
        raise SystemExit(f"prepare_text: missing {path}; expected the de-en/ folder of the IWSLT'14 release")
    with open(path, encoding="utf-8") as handle:
        return [line.rstrip("\n") for line in handle]


def train_text(path):
    """Talk transcripts, one sentence a line, without the metadata lines and tags."""
    return [" ".join(STRIPPED_TAGS.sub("", line).split()) for line in read_lines(path)
            if not any(tag in line for tag in DROPPED_TAGS)]


def segments(path):
    """The sentences of an IWSLT ``.xml`` file (its ``<seg id="N">`` lines)."""
    sentences = []
    for number, line in enumerate(read_lines(path), 1):
        if "<seg id" not in line:
            continue
        match = SEGMENT.search(line)
        if match is None:
            raise SystemExit(f"prepare_text: {path}:{number}: expected <seg id=N>...</seg> on one line, "
                             f"got {line[:80]!r}")
        sentences.append(" ".join(match.group(1).replace("\u2019", "'").split()))
    return sentences


def keep_pair(src, tgt, max_len, ratio):
    """Moses ``clean-corpus-n.perl``: 1..max_len words a side and a word-count ratio <= ratio."""
    n_src, n_tgt = len(src.split()), len(tgt.split())
    if not (1 <= n_src <= max_len and 1 <= n_tgt <= max_len):
        return False
    return n_src / n_tgt <= ratio and n_tgt / n_src <= ratio


def aligned(name, pair):
    de, en = pair
    if len(de) != len(en):
        raise SystemExit(f"prepare_text: {name} has {len(de)} German and {len(en)} English lines; "
                         "expected a line-aligned pair")
    return list(zip(de, en))


def split_corpus(orig, max_len, ratio):
    """{split: [(de, en), ...]} for train, valid and test."""
    train = aligned("train.tags", [train_text(os.path.join(orig, TRAIN.format(lang=lang))) for lang in LANGS])
    train = [pair for pair in train if keep_pair(*pair, max_len, ratio)]
    test = []
    for name in TEST_SETS:
        test += aligned(name, [segments(os.path.join(orig, f"{name}.de-en.{lang}.xml")) for lang in LANGS])
    return {
        "train": [pair for i, pair in enumerate(train, 1) if i % VALID_EVERY != 0],
        "valid": [pair for i, pair in enumerate(train, 1) if i % VALID_EVERY == 0],
        "test": test,
    }


def write(out, splits, lowercase):
    os.makedirs(out, exist_ok=True)
    for split, pairs in splits.items():
        for k, lang in enumerate(LANGS):
            path = os.path.join(out, f"{split}.{lang}")
            with open(path + ".tmp", "w", encoding="utf-8") as handle:
                for pair in pairs:
                    handle.write((pair[k].lower() if lowercase else pair[k]) + "\n")
            os.replace(path + ".tmp", path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orig", required=True, help="the de-en/ folder of the IWSLT'14 release")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--lowercase", action="store_true")
    parser.add_argument("--max-len", type=int, default=175, help="most words a side of a training pair")
    parser.add_argument("--ratio", type=float, default=1.5, help="largest word-count ratio of a training pair")
    args = parser.parse_args(argv)
    if args.max_len < 1 or args.ratio < 1:
        raise SystemExit(f"prepare_text: --max-len {args.max_len} --ratio {args.ratio}; expected >= 1 each")
    splits = split_corpus(args.orig, args.max_len, args.ratio)
    write(args.out, splits, args.lowercase)
    print("[prepare_text] " + ", ".join(f"{split} {len(pairs)}" for split, pairs in splits.items())
          + f" pairs -> {args.out}")


if __name__ == "__main__":
    main()
