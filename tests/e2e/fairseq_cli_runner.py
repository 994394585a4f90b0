"""Run fairseq command-line tools in a subprocess, as a user would."""

import json
import os
import subprocess
import sys

from fairseq_dynloss.user_dir import USER_DIR

TINY = {
    "transformer": [
        "--arch", "transformer", "--encoder-layers", "1", "--decoder-layers", "1",
        "--encoder-embed-dim", "32", "--decoder-embed-dim", "32", "--encoder-ffn-embed-dim", "64",
        "--decoder-ffn-embed-dim", "64", "--encoder-attention-heads", "2",
        "--decoder-attention-heads", "2", "--share-all-embeddings",
    ],
    # Separate encoder / decoder / output embeddings (no weight tying).
    "transformer_untied": [
        "--arch", "transformer", "--encoder-layers", "1", "--decoder-layers", "1",
        "--encoder-embed-dim", "32", "--decoder-embed-dim", "32", "--encoder-ffn-embed-dim", "64",
        "--decoder-ffn-embed-dim", "64", "--encoder-attention-heads", "2",
        "--decoder-attention-heads", "2",
    ],
    "lstm": [
        "--arch", "lstm", "--encoder-embed-dim", "32", "--decoder-embed-dim", "32",
        "--encoder-hidden-size", "32", "--decoder-hidden-size", "32", "--decoder-out-embed-dim", "32",
    ],
}


def fairseq(tool, *args, env=None, check=True):
    """``python -m fairseq_cli.<tool> ARGS``; returns the CompletedProcess (text mode)."""
    full_env = dict(os.environ, OMP_NUM_THREADS="1", **(env or {}))
    full_env.pop("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", None)  # prove no env var is needed
    proc = subprocess.run([sys.executable, "-m", f"fairseq_cli.{tool}", *map(str, args)],
                          capture_output=True, text=True, env=full_env)
    if check and proc.returncode != 0:
        raise AssertionError(f"fairseq {tool} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def train_args(data_bin, save_dir, arch, *extra):
    return [data_bin, "--user-dir", USER_DIR, "--task", "translation", "--cpu", "--seed", "3",
            *TINY[arch], "--optimizer", "adam", "--lr", "0.003", "--max-tokens", "600",
            "--save-dir", save_dir, "--no-epoch-checkpoints", "--log-format", "json",
            "--log-interval", "1", "--no-progress-bar",
            # No loader threads: a prefetch thread alive at exit can abort the process.
            "--num-workers", "0", "--data-buffer-size", "0", *extra]


def json_logs(text, key="num_updates"):
    """fairseq's ``--log-format json`` lines (train_inner / valid records) that contain ``key``."""
    records = []
    for line in text.splitlines():
        start = line.find("{")
        if start >= 0 and key in line:
            try:
                records.append(json.loads(line[start:]))
            except json.JSONDecodeError:
                continue
    return records


def valid_nll(proc) -> float:
    """The last validation NLL (bits per token) fairseq logged: ``valid_nll_loss`` of
    ``dynamic_loss``, or ``valid_loss`` of ``cross_entropy`` (which is its NLL)."""
    records = json_logs(proc.stdout + proc.stderr, key="valid_loss")
    assert records, "no validation record"
    return float(records[-1].get("valid_nll_loss", records[-1]["valid_loss"]))
