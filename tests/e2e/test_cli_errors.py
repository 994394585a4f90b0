"""Bad input on the fairseq command line: a clear error, non-zero exit, and no checkpoint written."""

import pytest
import torch

from fairseq_cli_runner import fairseq, train_args

pytestmark = pytest.mark.slow


def phi_file(path, payload):
    torch.save(payload, path)
    return path


@pytest.mark.parametrize("make_args, message", [
    (lambda tmp, vocab: ["--phi-parametrisation", "full", "--phi-init",
                         phi_file(tmp / "wrong_shape.pt", torch.eye(vocab + 1))],
     "'matrix' has shape"),
    (lambda tmp, vocab: ["--phi-parametrisation", "full", "--phi-init",
                         phi_file(tmp / "nan.pt", torch.full((vocab, vocab), float("nan")))],
     "non-finite values"),
    (lambda tmp, vocab: ["--phi-parametrisation", "cubic"], "invalid choice: 'cubic'"),
    (lambda tmp, vocab: ["--phi-parametrisation", "diag_lowrank", "--phi-rank", "0"], "rank=0"),
    (lambda tmp, vocab: ["--phi-parametrisation", "diag_lowrank", "--phi-rank", "-2"], "rank=-2"),
    (lambda tmp, vocab: ["--phi-parametrisation", "bucketed", "--phi-buckets", str(vocab + 1)],
     f"exceeds the vocabulary size"),
])
def test_bad_input_fails_clearly_and_writes_nothing(toy_data_bin, tmp_path, make_args, message):
    data = toy_data_bin / "data-bin"
    vocab = len((data / "dict.tgt.txt").read_text().splitlines()) + 4  # + fairseq's 4 specials
    save = tmp_path / "ckpt"
    proc = fairseq("train", *train_args(data, save, "transformer", "--criterion", "dynamic_loss",
                                        "--max-update", "5"),
                   *make_args(tmp_path, vocab), check=False)
    assert proc.returncode != 0
    assert message in proc.stderr + proc.stdout
    # fairseq itself creates (empty) save dirs before building the criterion; nothing is in it.
    assert not save.exists() or not any(save.iterdir())
