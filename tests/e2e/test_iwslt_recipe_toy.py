"""recipes/iwslt14_de_en end to end in toy mode (TOY=1): the same scripts as the paper-scale run.

prepare (from toy raw text via RAW_DIR, or from an IWSLT-shaped archive through the download path)
-> cross-entropy student -> L2T-DLF teacher -> taught student -> fairseq-generate + sacrebleu.
"""

import csv
import io
import json
import os
import subprocess
import tarfile

import pytest

from fairseq_dynloss.teacher import load_teacher

pytestmark = pytest.mark.slow

RECIPE = os.path.join(os.path.dirname(__file__), "..", "..", "recipes", "iwslt14_de_en")
SIGNATURE_START = "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:"


def recipe(script, *args, env, check=True):
    full_env = dict(os.environ, OMP_NUM_THREADS="1", **env)
    for name in ("TOY", "WORK", "STUDENT", "STUDENTS", "RAW_DIR", "MAX_UPDATE", "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"):
        if name not in env:
            full_env.pop(name, None)
    proc = subprocess.run(["bash", os.path.join(RECIPE, script), *args], env=full_env,
                          capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"{script} {args} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def read_lines(path):
    with open(path, encoding="utf-8") as handle:
        return handle.read().splitlines()


def check_scored(work, name, printed):
    """sacrebleu's JSON exists and parses, one hypothesis per reference, signature printed."""
    result = json.load(open(work / "results" / f"{name}.bleu.json"))
    assert 0.0 <= result["score"] <= 100.0
    assert result["signature"].startswith(SIGNATURE_START), result["signature"]
    assert f"[evaluate] {name}: BLEU {result['score']:.2f}  ({result['signature']})" in printed
    assert len(read_lines(work / "results" / f"{name}.hyp")) == len(read_lines(work / "raw" / "test.en"))


def test_toy_study_prepare_teach_evaluate(toy_data_bin, tmp_path):
    work = tmp_path / "work"
    env = {"TOY": "1", "WORK": str(work), "RAW_DIR": str(toy_data_bin / "raw"), "RAW_SRC": "src",
           "RAW_TGT": "tgt", "STUDENT": "transformer"}
    recipe("prepare.sh", env=env)
    # The toy text is the "de"/"en" pair of the recipe, unchanged.
    assert read_lines(work / "raw" / "test.en") == read_lines(toy_data_bin / "raw" / "test.tgt")
    assert (work / "data-bin" / "dict.de.txt").is_file() and (work / "data-bin" / "test.de-en.en.bin").is_file()

    recipe("train_ce.sh", env=env)
    ce = recipe("evaluate.sh", "ce", env=env)
    check_scored(work, "transformer_ce", ce.stdout)
    recipe("train_teacher.sh", env=env)
    teacher_dir = work / "checkpoints" / "transformer_teacher"
    rows = list(csv.DictReader(open(teacher_dir / "teacher_log.csv")))
    assert len(rows) == 3 and all(row["skipped"] == "0" for row in rows)  # TOY: 3 teacher steps
    vocab = len(read_lines(work / "data-bin" / "dict.en.txt")) + 4
    teacher = load_teacher(str(teacher_dir / "teacher.pt"), "bucketed", vocab, num_buckets=8)
    assert teacher.config["horizon"] == 60  # the toy student's --max-update
    student = recipe("train_student.sh", env=env)
    assert "transformer_l2t: done training" in student.stdout
    l2t = recipe("evaluate.sh", "l2t", env=env)
    check_scored(work, "transformer_l2t", l2t.stdout)

    # run_all.sh skips every finished step and trains the missing 2-layer LSTM student.
    logs = {name: os.path.getsize(work / "logs" / f"transformer_{name}.train.log") for name in ("ce", "teacher", "l2t")}
    run = recipe("run_all.sh", env={**env, "STUDENTS": "transformer lstm2"})
    assert "[prepare]" in run.stdout and "skipping" in run.stdout
    assert logs == {name: os.path.getsize(work / "logs" / f"transformer_{name}.train.log") for name in logs}
    for name in ("lstm2_ce", "lstm2_l2t"):
        check_scored(work, name, run.stdout)
    lstm_log = (work / "logs" / "lstm2_ce.train.log").read_text()
    assert "arch='lstm_wiseman_iwslt_de_en'" in lstm_log and "decoder_layers=2" in lstm_log
    table = (work / "results.md").read_text()
    for name in ("transformer_ce", "transformer_l2t", "lstm2_ce", "lstm2_l2t"):
        assert f"| {name} |" in table
    assert f"sacrebleu signature: {SIGNATURE_START}" in table


# ---- the download path, on an archive shaped like the IWSLT'14 De-En release ----------------------

TEST_SETS = ("IWSLT14.TED.dev2010", "IWSLT14.TEDX.dev2012", "IWSLT14.TED.tst2010",
             "IWSLT14.TED.tst2011", "IWSLT14.TED.tst2012")


def sentence(lang, i, words):
    return " ".join(f"{'Wort' if lang == 'de' else 'Word'}{i}x{k}" for k in range(words))


def kept_train_pairs(raw_pairs):
    """The rules of fairseq's prepare-iwslt14.sh, written out: metadata lines dropped, title and
    description tags stripped, clean-corpus-n (1..175 words, ratio <= 1.5), lowercased."""
    kept = []
    for de, en in raw_pairs:
        if any(tag in de for tag in ("<url>", "<talkid>", "<keywords>")):
            continue
        for tag in ("<title>", "</title>", "<description>", "</description>"):
            de, en = de.replace(tag, ""), en.replace(tag, "")
        n_de, n_en = len(de.split()), len(en.split())
        if 1 <= n_de <= 175 and 1 <= n_en <= 175 and n_de <= 1.5 * n_en and n_en <= 1.5 * n_de:
            kept.append((de.lower(), en.lower()))
    return kept


def fake_release(path):
    """de-en.tgz laid out like the real one; returns the expected {split: [(de, en)]}."""
    raw_pairs = [("<url>http://www.ted.com/talks/a</url>", "<url>http://www.ted.com/talks/a</url>"),
                 ("<keywords>talks</keywords>", "<keywords>talks</keywords>"),
                 ("<talkid>1</talkid>", "<talkid>1</talkid>"),
                 ("<title>Ein Titel</title>", "<title>A Title</title>")]
    for i in range(60):
        # Every 7th pair is too long on one side, every 11th has a word-count ratio of 2.
        de_words = 176 if i % 7 == 3 else 4 + i % 5
        en_words = 2 * de_words if i % 11 == 5 else de_words
        raw_pairs.append((sentence("de", i, de_words), sentence("en", i, en_words)))
    raw_pairs.insert(20, ("<description>Ein Vortrag</description>", "<description>A talk</description>"))
    files = {f"de-en/train.tags.de-en.{lang}": "".join(pair[k] + "\n" for pair in raw_pairs)
             for k, lang in enumerate(("de", "en"))}
    test = []
    for n, name in enumerate(TEST_SETS):
        for lang in ("de", "en"):
            segs = [f'<seg id="{k + 1}"> {sentence(lang, 100 * n + k, 3)} It\u2019s </seg>' for k in range(2)]
            files[f"de-en/{name}.de-en.{lang}.xml"] = "\n".join(
                ['<?xml version="1.0" encoding="UTF-8"?>', "<mteval>", '<doc docid="1">',
                 "<talkid>1</talkid>", *segs, "</doc>", "</mteval>"]) + "\n"
        test += [(f"{sentence('de', 100 * n + k, 3)} it's".lower(), f"{sentence('en', 100 * n + k, 3)} it's".lower())
                 for k in range(2)]
    with tarfile.open(path, "w:gz") as archive:
        for name, text in files.items():
            data = text.encode("utf-8")
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    kept = kept_train_pairs(raw_pairs)
    assert ("ein titel", "a title") in kept and ("ein vortrag", "a talk") in kept
    return {"train": [p for i, p in enumerate(kept, 1) if i % 23], "valid": kept[22::23], "test": test}


def test_prepare_downloads_and_splits_an_iwslt_release(tmp_path):
    expected = fake_release(tmp_path / "de-en.tgz")
    assert len(expected["valid"]) == 2 and len(expected["train"]) > 40
    work = tmp_path / "work"
    env = {"WORK": str(work), "IWSLT14_URL": (tmp_path / "de-en.tgz").as_uri(), "SPM_VOCAB": "120",
           "PREPROCESS_WORKERS": "1"}
    bad = recipe("prepare.sh", env={**env, "IWSLT14_MD5": "0" * 32}, check=False)
    assert bad.returncode != 0 and f"expected IWSLT14_MD5={'0' * 32}" in bad.stderr
    assert not (work / "data-bin").exists()
    recipe("prepare.sh", env=env)
    for split, pairs in expected.items():
        assert read_lines(work / "raw" / f"{split}.de") == [de for de, _ in pairs], split
        assert read_lines(work / "raw" / f"{split}.en") == [en for _, en in pairs], split
    assert (work / "data-bin" / ".done").is_file() and (work / "spm" / "spm.model").is_file()
    again = recipe("prepare.sh", env=env)
    assert "exists; skipping" in again.stdout


@pytest.mark.parametrize("env, message", [
    ({"STUDENT": "lstm3"}, "STUDENT='lstm3'; expected transformer, lstm1 or lstm2"),
    ({"TOY": "yes"}, "TOY='yes'; expected 0 or 1"),
    ({"RAW_DIR": "/nonexistent/raw"}, "RAW_DIR='/nonexistent/raw' is not a folder"),
])
def test_bad_settings_are_named(tmp_path, env, message):
    proc = recipe("prepare.sh", env={"WORK": str(tmp_path / "work"), **env}, check=False)
    assert proc.returncode != 0 and message in proc.stderr
    assert not (tmp_path / "work" / "data-bin").exists()
