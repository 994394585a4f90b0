"""scripts/ala_transfer.py: the pre-training chain hands each run the previous run's policy, and
never shows the policy a benchmark's noise pattern or an evaluation seed."""

import os
import sys

import torch

from fairseq_dynloss.data.label_noise import load_noise_matrix, noise_matrix, random_sparse_noise_matrix
from fairseq_dynloss.study.mnist1d import SPARSE

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "scripts"))
import ala_transfer  # noqa: E402


def option(command, key):
    values = [a.split("=", 1)[1] for a in command if a.startswith(key + "=")]
    return values[-1] if values else None


def test_the_chain_passes_the_policy_on_and_never_uses_a_benchmark_pattern(tmp_path):
    chain = ala_transfer.pretrain_jobs("python", str(tmp_path), 6, 100, {})
    assert [job.after for job in chain] == [()] + [(chain[k].name,) for k in range(5)]
    benchmarks = [noise_matrix("pairflip", 0.4, 10),
                  random_sparse_noise_matrix(10, SPARSE["rate"], SPARSE["seed"], SPARSE["max_targets"])]
    for k, job in enumerate(chain):
        policy = option(job.command, "controller.policy_path")
        previous = None if k == 0 else os.path.dirname(chain[k - 1].outputs[0])
        assert policy == (None if k == 0 else os.path.join(previous, "ala_controller.pt"))
        assert int(option(job.command, "seed")) > 10  # the study's evaluation seeds are 1..10
        matrix = option(job.command, "task.label_noise.matrix")
        if k % 2 == 0:  # runs 1, 3, 5: clean labels
            assert matrix is None and option(job.command, "task.label_noise.kind") is None
            continue
        T = load_noise_matrix(matrix, 10)
        off = T - torch.diag(T.diagonal())
        assert torch.allclose(T.diagonal(), torch.full((10,), 0.6, dtype=T.dtype))
        assert ((off > 0).sum(1) == 1).all()  # one other class per class
        assert not any(torch.allclose(T, B.to(T.dtype)) for B in benchmarks)


def test_extra_overrides_reach_every_pretraining_and_deployed_run(tmp_path):
    extra = ["controller.hold=20", "controller.credit=classes"]
    chain = ala_transfer.pretrain_jobs("python", str(tmp_path), 3, 100, {}, extra)
    deployed = ala_transfer.deploy_jobs("python", str(tmp_path), chain[-1], ["pairflip40", "clean"], [1, 2],
                                        100, {}, extra)
    assert len(deployed) == 4
    for job in chain + deployed:
        assert option(job.command, "controller.hold") == "20"
        assert option(job.command, "controller.credit") == "classes"
    for job in deployed:  # the transferred policy comes after the extra overrides
        assert option(job.command, "controller.policy_path") == chain[-1].outputs[0]
