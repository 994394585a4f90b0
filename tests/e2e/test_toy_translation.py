"""End to end with the fairseq CLI: train, save, resume, generate, score; bad input; errors."""

import argparse

import pytest
import sacrebleu
import torch

from fairseq_dynloss.user_dir import USER_DIR
from fairseq_cli_runner import fairseq, json_logs, train_args

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("arch", ["lstm", "transformer", "transformer_untied"])
def test_train_resume_generate_score(toy_data_bin, tmp_path, arch):
    data, save = toy_data_bin / "data-bin", tmp_path / "ckpt"
    common = train_args(data, save, arch, "--criterion", "dynamic_loss",
                        "--phi-parametrisation", "bucketed", "--phi-buckets", "4", "--dropout", "0.1")
    fairseq("train", *common, "--max-update", "12")
    assert (save / "checkpoint_last.pt").is_file()
    resumed = fairseq("train", *common, "--max-update", "24", "--restore-file", save / "checkpoint_last.pt")
    assert "loaded checkpoint" in (resumed.stdout + resumed.stderr).lower()
    updates = [r["num_updates"] for r in json_logs(resumed.stdout + resumed.stderr) if "loss" in r]
    assert updates and min(int(u) for u in updates) > 12 and max(int(u) for u in updates) == 24

    # Resuming reproduces the uninterrupted run (fairseq reseeds every update from the seed).
    straight = fairseq("train", *train_args(data, tmp_path / "straight", arch, "--criterion",
                                            "dynamic_loss", "--phi-parametrisation", "bucketed",
                                            "--phi-buckets", "4", "--dropout", "0.1"),
                       "--max-update", "24")
    final = {}
    for name, path in (("resumed", save), ("straight", tmp_path / "straight")):
        with torch.serialization.safe_globals([argparse.Namespace]):
            final[name] = torch.load(path / "checkpoint_last.pt", weights_only=True)["model"]
    for key, value in final["straight"].items():
        torch.testing.assert_close(final["resumed"][key], value, rtol=1e-5, atol=1e-6)

    # fairseq-generate loads the checkpoint (weights-only safe loader, no env var) and sacrebleu scores it.
    gen = fairseq("generate", data, "--user-dir", USER_DIR, "--path",
                  save / "checkpoint_last.pt", "--gen-subset", "test", "--beam", "2",
                  "--batch-size", "16", "--required-batch-size-multiple", "1", "--cpu",
                  "--post-process", "sentencepiece")
    hyps = sorted((int(line.split("\t")[0][2:]), line.split("\t")[2])
                  for line in gen.stdout.splitlines() if line.startswith("D-"))
    refs = (toy_data_bin / "raw/test.tgt").read_text().splitlines()
    assert len(hyps) == len(refs) == 40
    bleu = sacrebleu.corpus_bleu([h for _, h in hyps], [refs])
    assert 0.0 <= bleu.score <= 100.0
