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


def test_evaluate_script_scores_the_validation_set_apart_from_test(toy_data_bin, tmp_path):
    """recipes/toy/evaluate.sh with SUBSET=valid (choices made on validation): it writes
    NAME.valid.* only, scored by sacrebleu against raw/valid.tgt; a bad SUBSET is refused."""
    import json
    import os
    import subprocess
    import sys

    work = tmp_path / "work"
    (work / "checkpoints").mkdir(parents=True)
    for folder in ("data-bin", "raw"):
        (work / folder).symlink_to(toy_data_bin / folder)
    fairseq("train", *train_args(work / "data-bin", work / "checkpoints/m", "transformer"),
            "--max-update", "4")
    script = os.path.join(os.path.dirname(USER_DIR), "recipes", "toy", "evaluate.sh")
    env = dict(os.environ, WORK=str(work), VENV_BIN=os.path.dirname(sys.executable),
               OMP_NUM_THREADS="1")
    run = lambda subset: subprocess.run(["bash", script, "m"], env=dict(env, SUBSET=subset),
                                        capture_output=True, text=True)
    done = run("valid")
    assert done.returncode == 0, done.stderr
    results = work / "results"
    assert sorted(p.name for p in results.iterdir() if not p.name.startswith("m.valid.")) == []
    hyps = (results / "m.valid.hyp").read_text().splitlines()
    refs = (toy_data_bin / "raw/valid.tgt").read_text().splitlines()
    assert len(hyps) == len(refs) == 40
    score = json.loads((results / "m.valid.bleu.json").read_text())["score"]
    assert score == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score, abs=0.05)
    bad = run("dev")
    assert bad.returncode == 2 and "SUBSET='dev'; expected test or valid" in bad.stderr
