"""Sequence-level criterions end to end with the fairseq CLI: fine-tune a CE checkpoint of the tiny
transformer, check the training-set reward (mean sentence BLEU of the candidates) rises, then
fairseq-generate and score with sacrebleu."""

import statistics

import pytest
import sacrebleu

from fairseq_dynloss.user_dir import USER_DIR
from fairseq_cli_runner import fairseq, json_logs, train_args

pytestmark = pytest.mark.slow

FINETUNE = {
    "expected_bleu": ["--seq-candidates", "8", "--seq-alpha", "0.2"],
    "reinforce_bleu": ["--seq-candidates", "4"],
    "softmax_margin": ["--seq-candidates", "4", "--nll-weight", "0.3"],
    "actor_critic_bleu": ["--seq-candidates", "4", "--decoder-state-dim", "32", "--nll-weight", "0.3"],
}
WINDOW = 30  # updates averaged at the start and at the end of fine-tuning


@pytest.fixture(scope="module")
def ce_checkpoint(toy_data_bin, tmp_path_factory):
    save = tmp_path_factory.mktemp("ce")
    fairseq("train", *train_args(toy_data_bin / "data-bin", save, "transformer", "--criterion",
                                 "label_smoothed_cross_entropy", "--dropout", "0"),
            "--max-update", "300", "--log-interval", "50")
    return save / "checkpoint_last.pt"


@pytest.mark.parametrize("criterion", list(FINETUNE))
def test_finetune_raises_reward_then_generate_and_score(toy_data_bin, ce_checkpoint, tmp_path, criterion):
    data = toy_data_bin / "data-bin"
    # A cross-entropy checkpoint has no criterion state; criteria with heads (actor-critic) accept
    # that and start from their fresh heads.
    start = ce_checkpoint
    run = fairseq("train", *train_args(data, tmp_path / "ft", "transformer", "--criterion", criterion,
                                       "--dropout", "0", *FINETUNE[criterion]),
                  "--lr", "0.001", "--max-update", "150", "--finetune-from-model", start)
    rewards = [float(r["cand_sentence_bleu"]) for r in json_logs(run.stdout + run.stderr)
               if "cand_sentence_bleu" in r and "update" in r]
    assert len(rewards) >= 2 * WINDOW
    assert statistics.mean(rewards[-WINDOW:]) > statistics.mean(rewards[:WINDOW])

    gen = fairseq("generate", data, "--user-dir", USER_DIR, "--path", tmp_path / "ft/checkpoint_last.pt",
                  "--gen-subset", "test", "--beam", "2", "--batch-size", "16",
                  "--required-batch-size-multiple", "1", "--cpu", "--post-process", "sentencepiece")
    hyps = sorted((int(line.split("\t")[0][2:]), line.split("\t")[2])
                  for line in gen.stdout.splitlines() if line.startswith("D-"))
    refs = (toy_data_bin / "raw/test.tgt").read_text().splitlines()
    assert len(hyps) == len(refs) == 40
    bleu = sacrebleu.corpus_bleu([h for _, h in hyps], [refs])
    assert 0.0 < bleu.score <= 100.0
