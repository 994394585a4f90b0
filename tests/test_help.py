"""dynloss-help: every option the plugin adds, read from the fairseq dataclasses, and the README
tables generated from them (so the two cannot drift)."""

import dataclasses
import re
from pathlib import Path

import pytest
from fairseq.tasks.translation import TranslationConfig

from fairseq_dynloss import help as dynloss_help

README = Path(__file__).resolve().parents[1] / "README.md"


def test_task_options_are_the_fields_the_plugin_adds_to_translation():
    cls = dynloss_help.config_class("translation_l2t")
    inherited = {f.name for f in dataclasses.fields(TranslationConfig)}
    own = [f for f in dataclasses.fields(cls) if f.name not in inherited
           and not (isinstance(f.default, str) and f.default.startswith("${"))]
    rows = dynloss_help.options("translation_l2t")
    assert [option for option, _, _ in rows] == ["--" + f.name.replace("_", "-") for f in own]
    assert all(text for _, _, text in rows), "every option has a help string"
    assert "--data" not in {o for o, _, _ in rows} and "--max-update" not in {o for o, _, _ in rows}


def test_criterion_options_show_defaults_and_choices():
    rows = {option: (default, text) for option, default, text in dynloss_help.options("dynamic_loss")}
    assert rows["--phi-rank"] == ("32", "rank r of diag_lowrank Phi")
    assert rows["--phi-scale"][0] == "none"
    assert rows["--report-accuracy"][0] == "off"
    assert "(choices: full, diag_lowrank, bucketed)" in rows["--phi-parametrisation"][1]
    assert "--sentence-avg" not in rows  # fairseq's own global option (an interpolation)


@pytest.mark.parametrize("name", dynloss_help.COMPONENTS)
def test_every_component_lists_options(name):
    assert dynloss_help.options(name)
    assert dynloss_help.markdown_table(name).startswith("| option | default | meaning |\n|---|---|---|\n| `--")


def test_the_readme_tables_match_the_dataclasses():
    text = README.read_text()
    marked = dynloss_help.MARKER.findall(text)
    assert "translation_l2t" in [name for _, name, _, _ in marked]
    refreshed, changed = dynloss_help.refresh_readme(text)
    stale = [name for name, differs in changed.items() if differs]
    assert not stale, f"README option tables out of date: {stale}; run dynloss-help --write-readme README.md"
    assert refreshed == text


def test_command_line(capsys):
    dynloss_help.main(["translation_ala"])
    out = capsys.readouterr().out
    assert out.startswith("translation_ala (--task translation_ala):\n")
    assert "  --ala-interval  (default: 20)\n" in out
    dynloss_help.main([])
    assert "translation_l2t" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="unknown component 'dynamic'"):
        dynloss_help.main(["dynamic"])


def test_help_strings_cite_sections_and_files_that_exist():
    # A help string that sends the user to "README, 'Loss forms'" when no such heading exists (or
    # to a docs/ file that is not there) is a dead end; every citation must resolve.
    root = README.parent
    headings, fenced = set(), False
    for line in README.read_text().splitlines():
        fenced ^= line.startswith("```")  # "# ..." inside a code block is a shell comment
        if not fenced and re.match(r"#{1,6} ", line):
            headings.add(line.lstrip("#").strip())
    cited = 0
    for name in dynloss_help.COMPONENTS:
        for option, _, text in dynloss_help.options(name):
            for section in re.findall(r"README, '([^']+)'", text):
                assert section in headings, f"{name} {option} cites README section '{section}'"
                cited += 1
            for path in re.findall(r"\b(docs/[\w./-]+\.md)\b", text):
                assert (root / path).is_file(), f"{name} {option} cites missing file {path}"
                cited += 1
    assert cited >= 2  # --dynamic-form and --phi-scale cite their explanations
