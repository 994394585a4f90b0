"""A learnable synthetic parallel corpus that needs no network ("src" -> "tgt").

The source language is a tiny SVO language; the target language differs in three ways a
translation model has to learn:

* **word mapping** -- every source word has its own target word (a seeded random lexicon);
* **reordering** -- target noun phrases put adjectives after the noun (in reverse order) and
  target clauses are verb-final (SOV);
* **agreement** -- target determiners and adjectives take the gender of their noun
  (``-o`` masculine, ``-a`` feminine), and target verbs take the number of the subject
  (plural subjects carry the source particle ``mi``, rendered as the suffix ``-n`` on the verb);
* **prepositions become postpositions** -- ``ko NP`` becomes ``NP de`` before the verb.

Example (seed 1)::

    src: da kelu tivo supa ne milo porika
    tgt: lo vanu zeda-o ... (see ``make_toy_corpus.py --show 3``)

Everything is deterministic given ``seed``. Sentences are lowercase words separated by spaces.
"""

from __future__ import annotations

import argparse
import os
import random
from dataclasses import dataclass
from typing import Callable, Dict, List, Sequence, Tuple

NUM_NOUNS = 80
NUM_ADJECTIVES = 40
NUM_VERBS = 40
NUM_ADVERBS = 16

Pair = Tuple[str, str]  # (source sentence, target sentence)

SRC_SYLLABLES = [c + v for c in "ktpsmnlr" for v in "aeiou"]
TGT_SYLLABLES = [c + v for c in "bdgvzhfw" for v in "aeiou"]


@dataclass
class Lexicon:
    """Source words, their target translations, and noun genders."""

    nouns: List[Tuple[str, str, str]]  # (source, target, gender "m"/"f")
    adjectives: List[Tuple[str, str]]
    verbs: List[Tuple[str, str]]
    adverbs: List[Tuple[str, str]]


def _words(rng: random.Random, syllables: Sequence[str], count: int, taken: set) -> List[str]:
    words = []
    while len(words) < count:
        word = "".join(rng.choice(syllables) for _ in range(rng.choice((2, 2, 3))))
        if word not in taken:
            taken.add(word)
            words.append(word)
    return words


def make_lexicon(seed: int) -> Lexicon:
    """A seeded random lexicon; source and target use disjoint syllable sets."""
    rng = random.Random(seed)
    counts = (NUM_NOUNS, NUM_ADJECTIVES, NUM_VERBS, NUM_ADVERBS)
    src_taken = {"da", "na", "mi", "ne", "ko"}
    tgt_taken = {"lo", "la", "uno", "una", "de"}
    src = [_words(rng, SRC_SYLLABLES, n, src_taken) for n in counts]
    tgt = [_words(rng, TGT_SYLLABLES, n, tgt_taken) for n in counts]
    genders = [rng.choice("mf") for _ in range(NUM_NOUNS)]
    return Lexicon(
        nouns=list(zip(src[0], tgt[0], genders)),
        adjectives=list(zip(src[1], tgt[1])),
        verbs=list(zip(src[2], tgt[2])),
        adverbs=list(zip(src[3], tgt[3])),
    )


def _noun_phrase(rng: random.Random, lex: Lexicon, allow_plural: bool) -> Tuple[List[str], List[str], bool]:
    definite = rng.random() < 0.6
    noun_src, noun_tgt, gender = rng.choice(lex.nouns)
    adjectives = rng.sample(lex.adjectives, rng.choice((0, 0, 1, 1, 2)))
    plural = allow_plural and rng.random() < 0.3
    src = ["da" if definite else "na"] + [a[0] for a in adjectives] + [noun_src]
    if plural:
        src.append("mi")
    suffix = "o" if gender == "m" else "a"
    if definite:
        det = "lo" if gender == "m" else "la"
    else:
        det = "uno" if gender == "m" else "una"
    tgt = [det, noun_tgt] + [a[1] + suffix for a in reversed(adjectives)]
    return src, tgt, plural


def make_pair(rng: random.Random, lex: Lexicon) -> Tuple[str, str]:
    """One (source, target) sentence pair."""
    subj_src, subj_tgt, plural = _noun_phrase(rng, lex, allow_plural=True)
    obj_src, obj_tgt, _ = _noun_phrase(rng, lex, allow_plural=False)
    verb_src, verb_tgt = rng.choice(lex.verbs)
    verb_tgt = verb_tgt + ("n" if plural else "")
    src = subj_src + [verb_src] + obj_src
    tgt = subj_tgt + obj_tgt + [verb_tgt]
    if rng.random() < 0.3:
        # Prepositional phrase "ko NP" -> postpositional "NP de", before the verb.
        pp_src, pp_tgt, _ = _noun_phrase(rng, lex, allow_plural=False)
        src += ["ko"] + pp_src
        tgt[-1:-1] = pp_tgt + ["de"]
    if rng.random() < 0.4:
        adverb_src, adverb_tgt = rng.choice(lex.adverbs)
        src += ["ne", adverb_src]
        tgt += [adverb_tgt]
    return " ".join(src), " ".join(tgt)


def unique_splits(draw_pair: Callable[[], Pair], sizes: Dict[str, int]) -> Dict[str, List[Pair]]:
    """Disjoint splits of pairs with unique sources, drawn by ``draw_pair`` in ``sizes`` order."""
    for split, size in sizes.items():
        if size <= 0:
            raise ValueError(f"split {split!r} has size {size}; expected a positive number")
    seen, pairs = set(), []
    total = sum(sizes.values())
    attempts = 0
    while len(pairs) < total:
        attempts += 1
        if attempts > 50 * total:
            raise RuntimeError(f"could not draw {total} unique pairs; ask for fewer")
        pair = draw_pair()
        if pair[0] not in seen:
            seen.add(pair[0])
            pairs.append(pair)
    splits, start = {}, 0
    for split, size in sizes.items():
        splits[split] = pairs[start : start + size]
        start += size
    return splits


def make_corpus(seed: int, sizes: Dict[str, int]) -> Dict[str, List[Pair]]:
    """Disjoint splits of unique pairs, e.g. ``sizes={"train": 4000, "valid": 300}``."""
    lex = make_lexicon(seed)
    rng = random.Random(seed + 1)
    return unique_splits(lambda: make_pair(rng, lex), sizes)


def write_splits(out_dir: str, splits: Dict[str, List[Pair]], src: str = "src", tgt: str = "tgt") -> None:
    """Write ``{split}.{src}`` and ``{split}.{tgt}`` files (one sentence per line), each atomically."""
    os.makedirs(out_dir, exist_ok=True)
    for split, pairs in splits.items():
        for side, lang in ((0, src), (1, tgt)):
            path = os.path.join(out_dir, f"{split}.{lang}")
            tmp = path + ".tmp"
            with open(tmp, "w", encoding="utf-8") as handle:
                handle.writelines(pair[side] + "\n" for pair in pairs)
            os.replace(tmp, path)


def write_corpus(out_dir: str, seed: int, sizes: Dict[str, int], src: str = "src", tgt: str = "tgt") -> None:
    """Write the toy corpus with ``write_splits``."""
    write_splits(out_dir, make_corpus(seed, sizes), src, tgt)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--preset", default="toy", choices=["toy", "hard"],
                        help="toy: this module's corpus; hard: toy_hard_corpus.py (larger "
                        "lexicon, context-dependent words, long-range agreement)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--train", type=int, default=4000, help="training pairs")
    parser.add_argument("--valid", type=int, default=300, help="validation pairs")
    parser.add_argument("--test", type=int, default=300, help="test pairs")
    parser.add_argument("--noise-rate", type=float, default=0.0,
                        help="hard preset: fraction of training targets with confused nouns")
    parser.add_argument("--noise-seed", type=int, default=0, help="hard preset: noise seed")
    parser.add_argument("--show", type=int, default=0, help="print the first N training pairs")
    args = parser.parse_args(argv)
    sizes = {"train": args.train, "valid": args.valid, "test": args.test}
    if args.preset == "toy":
        if args.noise_rate != 0.0:
            parser.error(f"--noise-rate {args.noise_rate} needs --preset hard")
        splits = make_corpus(args.seed, sizes)
    else:
        from .toy_hard_corpus import make_hard_corpus

        if not 0.0 <= args.noise_rate <= 1.0:
            parser.error(f"--noise-rate {args.noise_rate}; expected a fraction in [0, 1]")
        splits = make_hard_corpus(args.seed, sizes, args.noise_rate, args.noise_seed)
    write_splits(args.out, splits)
    noise = f", noise rate {args.noise_rate} (seed {args.noise_seed})" if args.noise_rate else ""
    print(f"[toy-corpus] wrote {args.preset} {sizes} pairs (seed {args.seed}{noise}) to {args.out}")
    for src, tgt in splits["train"][: args.show]:
        print(f"  src: {src}\n  tgt: {tgt}")


if __name__ == "__main__":
    main()
