"""2-process CPU data parallelism (gloo, legacy_ddp) equals 1 process on the same total batch."""

import os
import socket
import subprocess
import sys

import pytest

from fairseq_cli_runner import json_logs, train_args

pytestmark = pytest.mark.slow


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def first_update(stdout):
    records = [r for r in json_logs(stdout) if "gnorm" in r and str(r["num_updates"]) == "1"]
    assert records, stdout[-2000:]
    return float(records[0]["loss"]), float(records[0]["gnorm"]), float(records[0]["nll_loss"])


def test_two_ranks_match_one_rank_with_update_freq_2(toy_data_bin, tmp_path):
    data = toy_data_bin / "data-bin"
    common = ["--criterion", "dynamic_loss", "--phi-parametrisation", "diag_lowrank", "--phi-rank", "8",
              "--nll-weight", "0.5", "--dropout", "0", "--max-update", "1", "--disable-validation",
              "--no-save"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    # One process, two batches accumulated into one update (--update-freq 2) ...
    single = subprocess.run([sys.executable, "-m", "fairseq_cli.train",
                             *map(str, train_args(data, tmp_path / "single", "transformer", *common,
                                                  "--update-freq", "2"))],
                            capture_output=True, text=True, env=env)
    assert single.returncode == 0, single.stderr[-3000:]
    # ... equals two ranks, each with one of those batches (fairseq shards batches round-robin).
    port = free_port()
    ranks = [subprocess.Popen(
        [sys.executable, "-m", "fairseq_cli.train",
         *map(str, train_args(data, tmp_path / "ddp", "transformer", *common)),
         "--distributed-world-size", "2", "--distributed-rank", str(rank),
         "--distributed-backend", "gloo", "--distributed-init-method", f"tcp://127.0.0.1:{port}",
         "--distributed-no-spawn", "--ddp-backend", "legacy_ddp"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for rank in range(2)]
    outputs = [proc.communicate(timeout=300) for proc in ranks]
    for proc, (out, err) in zip(ranks, outputs):
        assert proc.returncode == 0, err[-3000:]
    loss_1, gnorm_1, nll_1 = first_update(single.stdout)
    loss_2, gnorm_2, nll_2 = first_update(outputs[0][0])
    print(f"1 rank: loss {loss_1} nll {nll_1} gnorm {gnorm_1}; 2 ranks: loss {loss_2} nll {nll_2} gnorm {gnorm_2}")
    # Each rank saw half of the data: its own batch size (bsz) is logged summed over ranks.
    assert json_logs(outputs[0][0])[0]["bsz"] == json_logs(single.stdout)[0]["bsz"]
    # fairseq prints 3 significant decimals; the quantities agree to that precision.
    assert loss_2 == pytest.approx(loss_1, abs=2e-3)
    assert nll_2 == pytest.approx(nll_1, abs=2e-3)
    assert gnorm_2 == pytest.approx(gnorm_1, rel=1e-2, abs=2e-3)
