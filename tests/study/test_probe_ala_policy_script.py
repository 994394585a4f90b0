"""scripts/probe_ala_policy.py: a policy's preference P(+) - P(-) per group of elements, by hand."""

import math
import os
import sys

import torch

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "scripts"))
import probe_ala_policy  # noqa: E402


def test_preferences_by_hand(tmp_path):
    """A policy whose '+' logit is feature 0: elements with feature 0 = log 3 have P(+) = 3/5,
    P(-) = 1/5 (preference 0.4), those with 0 have 0; only the second half of a run counts."""
    def policy(features):
        logits = torch.zeros(features.shape[0], 3)
        logits[:, 2] = features[:, 0]
        return logits

    first, second = torch.zeros(4, 2), torch.zeros(4, 2)
    first[:, 0] = 100.0  # ignored: the first half
    second[:2, 0] = math.log(3)
    folder = tmp_path / "run"
    folder.mkdir()
    memory = {"transitions": [{"state": first}, {"state": second}]}
    torch.save({"controller": {"controller": {"memory": memory}}}, folder / "checkpoint_last.pt")
    groups = {"a": torch.tensor([True, True, False, False]), "b": torch.tensor([False, False, True, True])}
    out = probe_ala_policy.preferences(policy, [str(folder)], groups)
    assert math.isclose(out["a"], 0.4, abs_tol=1e-6) and math.isclose(out["b"], 0.0, abs_tol=1e-6)
