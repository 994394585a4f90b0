"""Multi-network ALA: two children (2 gloo processes under torchrun) share one controller and one
replay memory; children train independently from their own seeds."""

import csv
import sys

import pytest
import torch
from trainer_helpers import compose_config, run_cli

from fairseq_dynloss.controllers import PairPolicy, pair_feature_size
from fairseq_dynloss.trainer.ala import check_ala_world
from fairseq_dynloss.trainer.registry import ConfigError

LAUNCHER = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m"]


def read_csv(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_two_children_share_one_controller_and_one_replay_memory(tmp_path):
    run = run_cli("task=digits", "model=mlp", "loss=dynamic", "loss.form=paper", "loss.nll_weight=0.5", "controller=ala",
                  "controller.multi_network=true", "controller.window=4", "controller.val_subset=180",
                  "controller.base_beta=1.0", "controller.clamp=[-2.0,2.0]", "controller.replay_capacity=100",
                  "controller.replay_batch=4", "task.epochs=2", "optim=adam",
                  "optim.lr=0.003", "device=cpu", "tensorboard=false", "plot_every=100",
                  f"hydra.run.dir={tmp_path}", launcher=LAUNCHER)
    assert run.returncode == 0, run.stderr[-3000:]
    ckpt = [torch.load(tmp_path / f"child{r}/checkpoint_last.pt", weights_only=True) for r in (0, 1)]
    logs = [read_csv(tmp_path / f"child{r}/ala_log.csv") for r in (0, 1)]
    windows = 2 * 17 // 4
    assert len(logs[0]) == len(logs[1]) == windows

    # one controller: identical policy (and learned: not the initial one) and baseline everywhere
    ckpt_controllers = [c["controller"]["controller"] for c in ckpt]
    policies = [c["learner"]["policy"] for c in ckpt_controllers]
    initial = PairPolicy(pair_feature_size(2), hidden=32, seed=1).state_dict()
    assert any(not torch.equal(policies[0][k], initial[k]) for k in initial)
    for key in policies[0]:
        assert torch.equal(policies[0][key], policies[1][key]), key
    assert ckpt_controllers[0]["learner"]["baseline"] == ckpt_controllers[1]["learner"]["baseline"]

    # one replay memory: the same transitions on both ranks, from both children
    memories = [c["memory"]["transitions"] for c in ckpt_controllers]
    assert len(memories[0]) == len(memories[1]) == 2 * (windows - 1)
    for a, b in zip(*memories):
        assert (a["child"], a["step"], a["reward"]) == (b["child"], b["step"], b["reward"])
        assert torch.equal(a["state"], b["state"]) and torch.equal(a["action"], b["action"])
        assert a["advantage"] == b["advantage"] and torch.equal(a["behaviour"], b["behaviour"])
    for child in (0, 1):
        mine = sorted((t for t in memories[0] if t["child"] == child), key=lambda t: t["step"])
        assert [t["step"] for t in mine] == list(range(windows - 1))
        for t in mine:  # transition s holds the action of window s and the reward logged at window s + 1
            row = logs[child][t["step"]]
            counts = [int((t["action"] == a).sum()) for a in (-1, 0, 1)]
            assert counts == [int(row["actions_minus"]), int(row["actions_zero"]), int(row["actions_plus"])]
            assert t["reward"] == float(logs[child][t["step"] + 1]["reward"])

    # independent children: own seeds, own Phi, both moved
    phis = [c["student"]["objective.phi.matrix"] for c in ckpt]
    for phi in phis:
        assert (phi - torch.diag(phi.diagonal())).abs().max() > 0
    assert not torch.equal(phis[0], phis[1])
    assert not torch.equal(ckpt[0]["student"]["net.1.weight"], ckpt[1]["student"]["net.1.weight"])
    assert ckpt[0]["config"] == ckpt[1]["config"]  # one run config; the child seed is seed + rank


def test_several_processes_without_multi_network_are_refused():
    ctrl = compose_config("loss=dynamic", "loss.form=paper", "controller=ala").controller
    with pytest.raises(ConfigError, match="controller=ala with 2 processes needs controller.multi_network=true"):
        check_ala_world(ctrl, 2)
    check_ala_world(ctrl, 1)
    check_ala_world(compose_config("loss=dynamic", "loss.form=paper", "controller=ala", "controller.multi_network=true").controller, 4)
