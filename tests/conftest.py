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


@pytest.fixture(autouse=True)
def fresh_hydra_version_base():
    """Every test sees Hydra's version base as a fresh process does.

    dynloss-train's configs are composed with ``version_base="1.3"``, which Hydra keeps in a
    process-wide singleton; fairseq's in-process config conversion
    (``convert_namespace_to_omegaconf``) then calls ``hydra.experimental.initialize``, which
    raises ImportError under a version base >= 1.2. Separate processes never mix the two; one
    pytest process does, so the base is reset after each test.
    """
    from hydra.version import _UNSPECIFIED_, VersionBase

    yield
    VersionBase.instance().version_base = _UNSPECIFIED_
