"""--task translation_ala in fairseq-train: Phi moves, rewards are recorded, resume is exact, errors."""

import csv

import pytest
import torch

from fairseq_cli_runner import fairseq, json_logs, train_args
from fairseq_dynloss.controllers import load_controller

pytestmark = pytest.mark.slow

ALA = ("--task", "translation_ala", "--criterion", "dynamic_loss", "--phi-source", "ala",
       "--phi-parametrisation", "bucketed", "--phi-buckets", "4", "--ala-interval", "3",
       "--ala-val-batches", "2", "--ala-val-max-sentences", "16", "--dropout", "0.1")


def ala_args(data, save, *extra):
    # train_args sets --task translation; the later --task wins in argparse.
    return train_args(data, save, "transformer", *ALA, *extra)


def read_rows(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


def load_checkpoint(path):
    from fairseq import checkpoint_utils
    from fairseq_dynloss.checkpoint_compat import allow_fairseq_checkpoints

    allow_fairseq_checkpoints()  # what --user-dir does in fairseq's own tools
    return checkpoint_utils.load_checkpoint_to_cpu(str(path))


def bucket_sizes(dict_path, buckets):
    """|h| of the criterion's frequency buckets over the fairseq target dictionary."""
    from fairseq.data import Dictionary
    from fairseq_dynloss.losses import frequency_buckets

    dictionary = Dictionary.load(str(dict_path))
    return torch.bincount(frequency_buckets(list(dictionary.count), buckets), minlength=buckets)


def sign(x):
    return float((x > 0) - (x < 0))


@pytest.mark.parametrize("reward", ["loss", "bleu"])
def test_phi_moves_and_rewards_follow_the_window_metric(toy_data_bin, tmp_path, reward):
    data, save = toy_data_bin / "data-bin", tmp_path / "ckpt"
    # No clamp in reach (|W| <= 1 = 40 steps), so that W counts every action.
    proc = fairseq("train", *ala_args(data, save, "--ala-reward", reward, "--max-update", "19",
                                      "--ala-clamp", "1"))
    rows = read_rows(save / "ala_log.csv")
    assert [int(r["update"]) for r in rows] == [3, 6, 9, 12, 15, 18]
    assert rows[0]["reward"] == ""
    # r_t = sign(M_{t-1} - M_t) for the loss, flipped for BLEU (higher is better).
    direction = 1.0 if reward == "bleu" else -1.0
    for before, after in zip(rows, rows[1:]):
        change = float(after["window_metric"]) - float(before["window_metric"])
        assert float(after["reward"]) == sign(direction * change)
    if reward == "bleu":
        assert all(0.0 <= float(r["metric"]) <= 100.0 for r in rows)
    # W = |h| B moved by beta = 0.1 / sqrt(16) per action.
    phi = load_checkpoint(save / "checkpoint_last.pt")["task_state"]["ala"]["phi"]
    W = phi["B"] * bucket_sizes(data / "dict.tgt.txt", 4)
    steps = W / 0.025
    torch.testing.assert_close(steps, steps.round(), rtol=0, atol=1e-3)
    assert steps.abs().sum() > 0
    assert steps.sum().round() == sum(int(r["actions_plus"]) - int(r["actions_minus"]) for r in rows)
    assert float(rows[-1]["W_mean_abs"]) == pytest.approx(W.abs().mean().item(), abs=1e-6)
    logged = [r for r in json_logs(proc.stdout + proc.stderr) if r.get("ala_reward") not in (None, "")]
    assert logged, "ala_reward is logged by fairseq"
    policy = load_controller(str(save / "ala_controller.pt"))
    assert policy.extra["reward_metric"] == reward and policy.extra["num_elements"] == 16


@pytest.mark.parametrize("form", ["paper", "prob"])
def test_resume_reproduces_the_uninterrupted_run(toy_data_bin, tmp_path, form):
    """Stop after 8 updates (inside the third window of K=3), resume to 16. Under the prob form
    the controller moves the logits of B = exp(L) (base beta 4: a step of 1 per window, so B
    moves visibly); Phi stays finite and non-negative, and the logits resume exactly too."""
    data = toy_data_bin / "data-bin"
    # The same horizon, so that both runs see the same progress feature u / T.
    common = ["--ala-horizon", "16", "--dynamic-form", form] + (["--ala-beta", "4"] if form == "prob" else [])
    fairseq("train", *ala_args(data, tmp_path / "straight", *common, "--max-update", "16"))
    fairseq("train", *ala_args(data, tmp_path / "resumed", *common, "--max-update", "8"))
    proc = fairseq("train", *ala_args(data, tmp_path / "resumed", *common, "--max-update", "16",
                                      "--restore-file", tmp_path / "resumed" / "checkpoint_last.pt"))
    assert "resumed controller state" in proc.stdout + proc.stderr
    straight = load_checkpoint(tmp_path / "straight" / "checkpoint_last.pt")
    resumed = load_checkpoint(tmp_path / "resumed" / "checkpoint_last.pt")
    assert straight["optimizer_history"][-1]["num_updates"] == 16
    for key, value in straight["model"].items():
        torch.testing.assert_close(resumed["model"][key], value, rtol=0, atol=1e-6, msg=key)
    for name, value in straight["task_state"]["ala"]["phi"].items():
        assert torch.equal(resumed["task_state"]["ala"]["phi"][name], value), name
    if form == "prob":
        logits = straight["task_state"]["ala"]["target"]["logits"]
        assert torch.equal(resumed["task_state"]["ala"]["target"]["logits"], logits)
        B = straight["task_state"]["ala"]["phi"]["B"]
        assert torch.isfinite(B).all() and (B >= 0).all()
        torch.testing.assert_close(B, torch.exp(logits).float())
        assert ((logits >= -9.2) & (logits <= 0)).all() and (logits > -9.2).any(), "some B moved up"
    drop_time = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
    rows = read_rows(tmp_path / "straight" / "ala_log.csv")
    assert len(rows) == 5
    assert drop_time(read_rows(tmp_path / "resumed" / "ala_log.csv")) == drop_time(rows)


def test_a_controller_that_cannot_move_phi_leaves_training_untouched(toy_data_bin, tmp_path):
    """--ala-beta 1e-30: measurements, states and policy steps all run but W stays ~0, so the
    student equals a --phi-source fixed run (the dev passes change no randomness and no mode)."""
    data = toy_data_bin / "data-bin"
    fairseq("train", *ala_args(data, tmp_path / "ala", "--ala-beta", "1e-30", "--max-update", "10"))
    fairseq("train", *train_args(data, tmp_path / "fixed", "transformer", "--criterion", "dynamic_loss",
                                 "--phi-parametrisation", "bucketed", "--phi-buckets", "4", "--dropout", "0.1",
                                 "--max-update", "10"))
    assert len(read_rows(tmp_path / "ala" / "ala_log.csv")) == 3
    ala = load_checkpoint(tmp_path / "ala" / "checkpoint_last.pt")["model"]
    fixed = load_checkpoint(tmp_path / "fixed" / "checkpoint_last.pt")["model"]
    for key, value in fixed.items():
        torch.testing.assert_close(ala[key], value, rtol=0, atol=1e-6, msg=key)


@pytest.mark.parametrize("extra, message", [
    (["--ala-reward", "error"], "invalid choice: 'error'"),
    (["--ala-beta", "0"], "--ala-beta: beta=0.0; expected a finite step size > 0"),
    (["--ala-interval", "0"], "--ala-interval: window K=0; expected an integer >= 1"),
    (["--phi-parametrisation", "diag_lowrank"], "translation_ala controls a bucketed Phi"),
    (None, "--phi-source ala needs --task translation_ala"),
])
def test_bad_input(toy_data_bin, tmp_path, extra, message):
    data, save = toy_data_bin / "data-bin", tmp_path / "ckpt"
    if extra is None:  # --phi-source ala under plain --task translation (which has no --ala-* options)
        args = train_args(data, save, "transformer", "--criterion", "dynamic_loss", "--phi-source", "ala",
                          "--phi-parametrisation", "bucketed", "--max-update", "3")
    else:
        args = ala_args(data, save, "--max-update", "3", *extra)
    proc = fairseq("train", *args, check=False)
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr
    assert not save.exists() or not any(save.iterdir())


def test_two_ranks_follow_one_rank_with_update_freq_2(toy_data_bin, tmp_path):
    """Data parallel: both ranks measure, act and stay in step; rank 0's log equals one process
    that accumulates the same two batches per update (--update-freq 2)."""
    import os
    import socket
    import subprocess
    import sys

    data = toy_data_bin / "data-bin"
    common = ["--ala-interval", "2", "--ala-val-batches", "1", "--dropout", "0", "--max-update", "7",
              "--disable-validation", "--ala-clamp", "1"]
    fairseq("train", *ala_args(data, tmp_path / "single", *common, "--update-freq", "2"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", None)
    ranks = [subprocess.Popen(
        [sys.executable, "-m", "fairseq_cli.train", *map(str, ala_args(data, tmp_path / "ddp", *common)),
         "--distributed-world-size", "2", "--distributed-rank", str(rank), "--distributed-backend", "gloo",
         "--distributed-init-method", f"tcp://127.0.0.1:{port}", "--distributed-no-spawn",
         "--ddp-backend", "legacy_ddp"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for rank in range(2)]
    for proc in ranks:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
    single = read_rows(tmp_path / "single" / "ala_log.csv")
    ddp = read_rows(tmp_path / "ddp" / "ala_log.csv")
    assert [r["update"] for r in ddp] == [r["update"] for r in single] == ["2", "4", "6"]
    for a, b in zip(single, ddp):
        assert float(b["metric"]) == pytest.approx(float(a["metric"]), rel=1e-4)
        for key in ("reward", "actions_minus", "actions_zero", "actions_plus"):
            assert b[key] == a[key], key
        for key in ("W_mean_abs", "W_min", "W_max"):
            assert float(b[key]) == pytest.approx(float(a[key]), abs=1e-9), key
