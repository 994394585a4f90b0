"""The ``hard`` synthetic parallel corpus: the toy language with room left for a loss to help.

The toy corpus (``toy_corpus.py``) is learned almost perfectly in a few minutes (transformer CE
~89 BLEU). This one keeps its shape -- SVO source, verb-final target, adjectives after the noun,
postpositions -- and adds what makes real translation hard for a small model:

* **a larger lexicon** -- 300 nouns, 80 adjectives, 80 verbs, 24 adverbs, so that many words are
  seen only a few times in training;
* **word senses chosen by context** -- a third of the source nouns have two target translations;
  which one depends on the *verb* of the clause (every verb belongs to one of two domains), so
  the model has to look across the sentence to pick the noun;
* **verbs chosen by context** -- every source verb has two target stems, one for an animate and
  one for an inanimate object;
* **adjective forms chosen by context** -- the adjective's ending marks its noun's gender and
  class (four endings instead of two);
* **long-range agreement** -- the target verb, last in the clause, carries the subject's gender
  and number, and a subject may carry a relative clause ("the N that V-s NP ..."), so the subject
  and its verb can be far apart;
* **longer sentences** -- a second clause may be joined with ``e`` ("and").

Noisy targets (``noise_rate``): a seeded confusion of target nouns, each noun mapped to one other
noun of the same gender (a fixed derangement), is applied to ``round(noise_rate * N)`` training
targets chosen by ``noise_seed``; every noun of a chosen target is replaced. Every sentence has a
subject noun, so a chosen target always changes. Validation and test targets are never touched.

Deterministic given ``seed`` (corpus) and ``noise_seed`` (which targets are noisy).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

from .toy_corpus import SRC_SYLLABLES, TGT_SYLLABLES, Pair, _words, unique_splits

NUM_NOUNS = 300
NUM_ADJECTIVES = 80
NUM_VERBS = 80
NUM_ADVERBS = 24
POLYSEMOUS_SHARE = 1 / 3
# Function words; kept out of the random lexicon.
SRC_FUNCTION = {"da": "definite", "na": "indefinite", "mi": "plural", "ne": "adverb",
                "ko": "preposition", "re": "relative", "e": "and"}
TGT_FUNCTION = {"lo", "la", "lu", "le", "uno", "una", "unu", "une", "de", "ke", "i"}
# target adjective endings by (gender, animate)
ADJ_ENDINGS = {("m", True): "o", ("f", True): "a", ("m", False): "u", ("f", False): "e"}
DEFINITE = {("m", True): "lo", ("f", True): "la", ("m", False): "lu", ("f", False): "le"}
INDEFINITE = {("m", True): "uno", ("f", True): "una", ("m", False): "unu", ("f", False): "une"}


@dataclass(frozen=True)
class Noun:
    """A source noun, its target translation per verb domain (equal for a one-sense noun), its
    gender (``"m"``/``"f"``) and whether it is animate."""

    src: str
    tgt: Tuple[str, str]
    gender: str
    animate: bool


@dataclass(frozen=True)
class Verb:
    """A source verb, its target stems for an (animate, inanimate) object, and its domain (0/1)
    that picks the sense of the clause's polysemous nouns."""

    src: str
    tgt: Tuple[str, str]
    domain: int


@dataclass
class HardLexicon:
    nouns: List[Noun]
    adjectives: List[Tuple[str, str]]
    verbs: List[Verb]
    adverbs: List[Tuple[str, str]]


def make_hard_lexicon(seed: int) -> HardLexicon:
    """A seeded lexicon; source and target use disjoint syllable sets, and no two words of a
    side are equal (so a target word names its class: the noise map relies on it)."""
    rng = random.Random(seed)
    src_taken, tgt_taken = set(SRC_FUNCTION), set(TGT_FUNCTION)
    polysemous = int(NUM_NOUNS * POLYSEMOUS_SHARE)
    src_nouns = _words(rng, SRC_SYLLABLES, NUM_NOUNS, src_taken)
    tgt_nouns = _words(rng, TGT_SYLLABLES, NUM_NOUNS + polysemous, tgt_taken)
    nouns = []
    for i, src in enumerate(src_nouns):
        second = tgt_nouns[NUM_NOUNS + i] if i < polysemous else tgt_nouns[i]
        nouns.append(Noun(src, (tgt_nouns[i], second), rng.choice("mf"), rng.random() < 0.5))
    src_adj = _words(rng, SRC_SYLLABLES, NUM_ADJECTIVES, src_taken)
    tgt_adj = _words(rng, TGT_SYLLABLES, NUM_ADJECTIVES, tgt_taken)
    src_verbs = _words(rng, SRC_SYLLABLES, NUM_VERBS, src_taken)
    tgt_verbs = _words(rng, TGT_SYLLABLES, 2 * NUM_VERBS, tgt_taken)
    verbs = [Verb(src, (tgt_verbs[2 * i], tgt_verbs[2 * i + 1]), i % 2)
             for i, src in enumerate(src_verbs)]
    src_adv = _words(rng, SRC_SYLLABLES, NUM_ADVERBS, src_taken)
    tgt_adv = _words(rng, TGT_SYLLABLES, NUM_ADVERBS, tgt_taken)
    return HardLexicon(nouns, list(zip(src_adj, tgt_adj)), verbs, list(zip(src_adv, tgt_adv)))


def _noun_phrase(rng: random.Random, lex: HardLexicon, plural_ok: bool):
    """(source words, noun, chosen adjectives, definite, plural); rendered by ``_render_np``
    once the clause's verb (which picks the noun's sense) is known."""
    noun = rng.choice(lex.nouns)
    adjectives = rng.sample(lex.adjectives, rng.choice((0, 0, 1, 1, 2)))
    definite = rng.random() < 0.6
    plural = plural_ok and rng.random() < 0.3
    src = ["da" if definite else "na"] + [a[0] for a in adjectives] + [noun.src]
    if plural:
        src.append("mi")
    return src, noun, adjectives, definite, plural


def _render_np(noun: Noun, adjectives, definite: bool, domain: int) -> List[str]:
    key = (noun.gender, noun.animate)
    det = (DEFINITE if definite else INDEFINITE)[key]
    return [det, noun.tgt[domain]] + [a[1] + ADJ_ENDINGS[key] for a in reversed(adjectives)]


def _verb_form(verb: Verb, obj: Noun, subject: Noun, plural: bool) -> str:
    """Stem by the object's animacy; suffix by the subject's gender and number."""
    stem = verb.tgt[0] if obj.animate else verb.tgt[1]
    return stem + ("o" if subject.gender == "m" else "a") + ("n" if plural else "")


def _clause(rng: random.Random, lex: HardLexicon) -> Tuple[List[str], List[str]]:
    subj_src, subj, subj_adj, subj_def, plural = _noun_phrase(rng, lex, plural_ok=True)
    verb = rng.choice(lex.verbs)
    obj_src, obj, obj_adj, obj_def, _ = _noun_phrase(rng, lex, plural_ok=False)
    src = list(subj_src)
    tgt = _render_np(subj, subj_adj, subj_def, verb.domain)
    if rng.random() < 0.35:
        # Relative clause on the subject: "re V NP" -> "NP V ke", between the subject and its
        # verb in the target (the verb agrees with the subject across it). The relative verb
        # agrees with the subject too and picks the senses inside the relative clause.
        rel_verb = rng.choice(lex.verbs)
        rel_src, rel_obj, rel_adj, rel_def, _ = _noun_phrase(rng, lex, plural_ok=False)
        src += ["re", rel_verb.src] + rel_src
        tgt += _render_np(rel_obj, rel_adj, rel_def, rel_verb.domain)
        tgt += [_verb_form(rel_verb, rel_obj, subj, plural), "ke"]
    src += [verb.src] + obj_src
    tgt += _render_np(obj, obj_adj, obj_def, verb.domain)
    if rng.random() < 0.3:
        # "ko NP" -> "NP de", before the verb.
        pp_src, pp, pp_adj, pp_def, _ = _noun_phrase(rng, lex, plural_ok=False)
        src += ["ko"] + pp_src
        tgt += _render_np(pp, pp_adj, pp_def, verb.domain) + ["de"]
    tgt.append(_verb_form(verb, obj, subj, plural))
    if rng.random() < 0.3:
        adverb = rng.choice(lex.adverbs)
        src += ["ne", adverb[0]]
        tgt.append(adverb[1])
    return src, tgt


def make_hard_pair(rng: random.Random, lex: HardLexicon) -> Pair:
    """One (source, target) pair: one clause, or two joined by ``e`` / ``i``."""
    src, tgt = _clause(rng, lex)
    if rng.random() < 0.3:
        src2, tgt2 = _clause(rng, lex)
        src, tgt = src + ["e"] + src2, tgt + ["i"] + tgt2
    return " ".join(src), " ".join(tgt)


def noun_confusion(lex: HardLexicon, noise_seed: int) -> Dict[str, str]:
    """The systematic error: every target noun form -> another target noun form of the same
    gender (a seeded cyclic shift of a shuffled list: no word maps to itself)."""
    rng = random.Random(noise_seed)
    mapping = {}
    for gender in "mf":
        forms = sorted({form for noun in lex.nouns if noun.gender == gender for form in noun.tgt})
        rng.shuffle(forms)
        mapping.update({a: b for a, b in zip(forms, forms[1:] + forms[:1])})
    return mapping


def add_target_noise(pairs: Sequence[Pair], mapping: Dict[str, str], rate: float,
                     noise_seed: int) -> Tuple[List[Pair], List[int]]:
    """Replace every mapped word of ``round(rate * len(pairs))`` seeded targets.

    Returns:
        the new pairs (sources unchanged) and the sorted indices of the noisy ones.
    """
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"noise rate {rate}; expected a fraction in [0, 1]")
    chosen = sorted(random.Random(noise_seed + 1).sample(range(len(pairs)),
                                                         round(rate * len(pairs))))
    out = list(pairs)
    for i in chosen:
        src, tgt = pairs[i]
        out[i] = (src, " ".join(mapping.get(word, word) for word in tgt.split()))
    return out, chosen


def make_hard_corpus(seed: int, sizes: Dict[str, int], noise_rate: float = 0.0,
                     noise_seed: int = 0) -> Dict[str, List[Pair]]:
    """Disjoint splits of unique pairs; ``noise_rate`` of the ``train`` targets made noisy."""
    if not 0.0 <= noise_rate <= 1.0:
        raise ValueError(f"noise rate {noise_rate}; expected a fraction in [0, 1]")
    lex = make_hard_lexicon(seed)
    rng = random.Random(seed + 1)
    splits = unique_splits(lambda: make_hard_pair(rng, lex), sizes)
    if noise_rate > 0.0:
        if "train" not in splits:
            raise ValueError(f"noise rate {noise_rate} but no 'train' split in {sorted(sizes)}")
        splits["train"], _ = add_target_noise(splits["train"], noun_confusion(lex, noise_seed),
                                              noise_rate, noise_seed)
    return splits
