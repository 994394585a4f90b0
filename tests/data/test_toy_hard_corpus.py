"""The toy corpora: bit-for-bit determinism, sizes, the hard corpus's grammar against hand values,
and target noise that touches training targets only, at the requested rate, as a fixed confusion."""

import hashlib
import os
import random
import subprocess
import sys

import pytest

from fairseq_dynloss.data.toy_corpus import main, make_corpus
from fairseq_dynloss.data.toy_hard_corpus import (
    NUM_NOUNS, HardLexicon, Noun, Verb, _render_np, _verb_form, add_target_noise,
    make_hard_corpus, make_hard_lexicon, make_hard_pair, noun_confusion)

REPO = __import__("pathlib").Path(__file__).resolve().parents[2]
SIZES = {"train": 400, "valid": 50, "test": 50}
# sha256 of the files `make_toy_corpus.py --train 200 --valid 20 --test 20` wrote before the hard
# preset existed: the toy corpus (and every toy result) is unchanged by it.
TOY_SHA256 = "68087c084ddc719f58948dd4b88b0870fddf27b1a1cdcd81a64de646c706e16b"
# ... and the hard preset with 20 % noise as recipes/toy_hard/README.md's numbers were made with:
# a changed generator changes every toy_hard result, so it must change this line too.
HARD_SHA256 = "14f9b9b536e5d6b1711561e061e738b2c03d87edde0abbd539c24b8ebb05b507"


def folder_sha256(folder) -> str:
    digest = hashlib.sha256()
    for name in sorted(os.listdir(folder)):
        digest.update(name.encode())
        digest.update((folder / name).read_bytes())
    return digest.hexdigest()


def write(folder, *args) -> str:
    main(["--out", str(folder), "--train", "200", "--valid", "20", "--test", "20", *args])
    return folder_sha256(folder)


def test_toy_preset_is_unchanged(tmp_path):
    assert write(tmp_path) == TOY_SHA256


def test_hard_preset_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    first = write(tmp_path / "a", "--preset", "hard", "--noise-rate", "0.2")
    assert first == HARD_SHA256
    assert write(tmp_path / "b", "--preset", "hard", "--noise-rate", "0.2") == first
    assert write(tmp_path / "c", "--preset", "hard", "--noise-rate", "0.2", "--seed", "2") != first
    assert write(tmp_path / "d", "--preset", "hard", "--noise-rate", "0.2",
                 "--noise-seed", "1") != first


def test_hard_preset_is_the_same_in_another_process(tmp_path):
    """No dependence on str hashing (set order) or process state."""
    here = write(tmp_path / "here", "--preset", "hard", "--noise-rate", "0.3")
    env = dict(os.environ, PYTHONHASHSEED="123")
    subprocess.run([sys.executable, str(REPO / "scripts" / "make_toy_corpus.py"), "--out",
                    str(tmp_path / "there"), "--preset", "hard", "--noise-rate", "0.3",
                    "--train", "200", "--valid", "20", "--test", "20"],
                   check=True, env=env, cwd=REPO, capture_output=True)
    assert folder_sha256(tmp_path / "there") == here


def test_sizes_and_disjoint_unique_sources():
    splits = make_hard_corpus(1, SIZES)
    assert {k: len(v) for k, v in splits.items()} == SIZES
    sources = [src for pairs in splits.values() for src, _ in pairs]
    assert len(set(sources)) == len(sources)


def test_sentences_are_longer_than_the_toy_ones():
    def mean_words(splits):
        pairs = splits["train"]
        return sum(len(tgt.split()) for _, tgt in pairs) / len(pairs)

    assert mean_words(make_hard_corpus(1, SIZES)) > 1.3 * mean_words(make_corpus(1, SIZES))


def test_grammar_against_hand_values():
    cat = Noun("kasa", ("bodo", "gize"), "f", True)   # animate feminine, two senses
    box = Noun("tiro", ("wuhu", "wuhu"), "m", False)  # inanimate masculine, one sense
    big = ("leno", "vaga")
    assert _render_np(cat, [big], True, 0) == ["la", "bodo", "vagaa"]
    assert _render_np(cat, [], False, 1) == ["una", "gize"]
    assert _render_np(box, [big, ("pu", "hi")], True, 1) == ["lu", "wuhu", "hiu", "vagau"]
    see = Verb("mole", ("zavi", "zefo"), 0)
    # stem by the object's animacy, suffix by the subject's gender and number
    assert _verb_form(see, cat, box, plural=False) == "zavio"
    assert _verb_form(see, box, cat, plural=True) == "zefoan"


def test_sense_of_a_polysemous_noun_follows_the_verb_domain():
    """Over many pairs every target form a source noun gets is the sense of its clause's verb
    domain; both senses occur (the model must use the context)."""
    lex = make_hard_lexicon(1)
    noun = next(n for n in lex.nouns if n.tgt[0] != n.tgt[1])
    only = HardLexicon([noun], lex.adjectives, lex.verbs, lex.adverbs)
    rng = random.Random(0)
    seen = set()
    for _ in range(200):
        src, tgt = make_hard_pair(rng, only)
        for clause_src, clause_tgt in zip(src.split(" e "), tgt.split(" i ")):
            domains = {v.domain for v in lex.verbs if v.src in clause_src.split()}
            forms = {w for w in clause_tgt.split() if w in noun.tgt}
            if len(domains) == 1:  # no relative clause with a verb of the other domain
                assert forms == {noun.tgt[domains.pop()]}
                seen |= forms
    assert seen == set(noun.tgt)


def test_noise_touches_training_targets_only_at_the_requested_rate():
    clean = make_hard_corpus(1, {"train": 4000, "valid": 100, "test": 100})
    noisy = make_hard_corpus(1, {"train": 4000, "valid": 100, "test": 100}, noise_rate=0.3)
    assert noisy["valid"] == clean["valid"] and noisy["test"] == clean["test"]
    assert [s for s, _ in noisy["train"]] == [s for s, _ in clean["train"]]
    changed = [i for i, (a, b) in enumerate(zip(clean["train"], noisy["train"])) if a != b]
    assert len(changed) == 1200  # round(0.3 * 4000): exact, not a binomial draw
    mapping = noun_confusion(make_hard_lexicon(1), 0)
    for i in changed:
        for before, after in zip(clean["train"][i][1].split(), noisy["train"][i][1].split()):
            assert after == mapping.get(before, before)


def test_confusion_is_a_same_gender_derangement_of_the_target_nouns():
    lex = make_hard_lexicon(1)
    mapping = noun_confusion(lex, 0)
    gender = {form: n.gender for n in lex.nouns for form in n.tgt}
    assert set(mapping) == set(gender) == set(mapping.values())
    assert len(gender) > NUM_NOUNS  # the second senses are nouns too
    assert all(a != b and gender[a] == gender[b] for a, b in mapping.items())
    assert noun_confusion(lex, 0) == mapping and noun_confusion(lex, 1) != mapping


def test_every_chosen_target_changes():
    pairs = make_hard_corpus(2, {"train": 500})["train"]
    noisy, chosen = add_target_noise(pairs, noun_confusion(make_hard_lexicon(2), 0), 0.5, 0)
    assert len(chosen) == 250
    assert all(noisy[i] != pairs[i] for i in chosen)
    assert all(noisy[i] == pairs[i] for i in set(range(500)) - set(chosen))


@pytest.mark.parametrize("rate", [-0.1, 1.5])
def test_bad_noise_rate_is_refused(rate):
    with pytest.raises(ValueError, match=f"noise rate {rate}; expected a fraction in"):
        make_hard_corpus(1, SIZES, noise_rate=rate)


def test_noise_on_the_toy_preset_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "x"), "--noise-rate", "0.2"])
    assert "--noise-rate 0.2 needs --preset hard" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()  # nothing half-written
