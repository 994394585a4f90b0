"""Shared pytest fixtures."""

import pytest
import torch


@pytest.fixture
def float64_default():
    """Run a test with float64 as torch's default dtype, restoring the old default after."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


REPO = __import__("pathlib").Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def toy_data_bin(tmp_path_factory):
    """A small binarised toy corpus (400 train pairs), built once per test session.

    Runs the same steps as recipes/toy/prepare.sh: corpus -> sentencepiece -> preprocess.
    """
    import subprocess
    import sys

    work = tmp_path_factory.mktemp("toy")
    run = lambda *args: subprocess.run([sys.executable, *args], check=True, capture_output=True)
    run(str(REPO / "scripts/make_toy_corpus.py"), "--out", str(work / "raw"),
        "--train", "400", "--valid", "40", "--test", "40")
    run(str(REPO / "scripts/spm_prepare.py"), "--raw", str(work / "raw"), "--out", str(work / "spm"),
        "--vocab-size", "300")
    run("-m", "fairseq_cli.preprocess", "--source-lang", "src", "--target-lang", "tgt",
        "--joined-dictionary", "--workers", "1", "--trainpref", str(work / "spm/train"),
        "--validpref", str(work / "spm/valid"), "--testpref", str(work / "spm/test"),
        "--destdir", str(work / "data-bin"))
    return work
