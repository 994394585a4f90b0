"""scripts/compare_results.py: RESULTS.md tables parsed and compared row by row."""

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "compare_results.py"

FIRST = """# Results
### digits, mlp: test error %

| method | seeds | test error % (lower is better) | Δ vs ce | p |
|---|---:|---:|---:|---:|
| ce | 5 | 2.44 ± 0.66 | — | — |
| ala | 5 | 2.72 ± 0.57 | +0.28 | 0.498 |
| lsoftmax | 5 | 2.28 ± 0.30 | -0.17 | 0.629 |

### toy translation, transformer

| method | seeds | BLEU | Δ vs ce |
|---|---:|---:|---:|
| ce | 5 | 88.80 ± 1.68 | — |
"""

SECOND = FIRST.replace("2.72 ± 0.57", "3.20 ± 0.40").replace("2.28 ± 0.30", "1.90 ± 0.10")


def run(tmp_path, first, second):
    a, b = tmp_path / "a.md", tmp_path / "b.md"
    a.write_text(first, encoding="utf-8")
    b.write_text(second, encoding="utf-8")
    return subprocess.run([sys.executable, str(SCRIPT), str(a), str(b)], capture_output=True, text=True)


def test_identical_files_are_within_std(tmp_path):
    result = run(tmp_path, FIRST, FIRST)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 rows compared, 0 outside the reported std" in result.stdout


def test_a_difference_larger_than_both_stds_is_reported(tmp_path):
    # ala: |3.20 - 2.72| = 0.48 <= max(0.57, 0.40) -> within; lsoftmax: 0.38 > max(0.30, 0.10).
    result = run(tmp_path, FIRST, SECOND)
    assert result.returncode == 1
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.startswith("  ")}
    assert "within std" in lines["ala"] and "+0.48" in lines["ala"]
    assert "OUTSIDE std" in lines["lsoftmax"] and "-0.38" in lines["lsoftmax"]
    assert "1 outside the reported std" in result.stdout


def test_rows_and_tables_in_one_file_only_are_listed(tmp_path):
    second = FIRST.replace("| ala | 5 | 2.72 ± 0.57 | +0.28 | 0.498 |\n", "").replace(
        "### toy translation, transformer", "### toy translation, lstm")
    result = run(tmp_path, FIRST, second)
    assert result.returncode == 0
    assert "ala                only in the first file" in result.stdout
    assert "only in the first file: toy translation, transformer" in result.stdout
    assert "only in the second file: toy translation, lstm" in result.stdout


def test_a_file_without_tables_is_refused(tmp_path):
    result = run(tmp_path, FIRST, "# nothing here\n")
    assert result.returncode != 0
    assert "b.md: no '### heading' tables" in result.stderr
