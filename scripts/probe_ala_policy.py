"""What an ALA policy prefers on pair-flip's flipped pairs and on the others (results/tuning_ala.md).

Feeds the states stored by ``scripts/ala_credit_signal.py`` runs (the replay memory of runs with
the policy frozen at uniform) to a controller file's policy and prints the mean of
P(a = +1) - P(a = -1) over the second half of each run, for the 20 class pairs that MNIST-1D's
40 % pair-flip noise flips (either orientation) and for the other 70:

    python scripts/probe_ala_policy.py work/ala_transfer_hold20/pretrain/run24/ala_controller.pt \
        --runs work/ala_hold20 --seeds 1 2 3 4 5 6 7 8 9 10
"""

import argparse
import os
import sys
from typing import Callable, Dict, List

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ala_credit_signal import pair_groups, stored_transitions  # noqa: E402

from fairseq_dynloss.controllers import load_controller  # noqa: E402


def preferences(policy: Callable[[torch.Tensor], torch.Tensor], folders: List[str],
                groups: Dict[str, torch.Tensor]) -> Dict[str, float]:
    """Mean P(+) - P(-) per group of elements over the second half of each run's stored states.

    Args:
        policy: maps (P, F) features to (P, 3) logits of the actions (-, 0, +).
        folders: runs whose ``checkpoint_last.pt`` holds the controller's replay memory.
        groups: name -> (P,) bool mask.
    """
    out: Dict[str, List[float]] = {name: [] for name in groups}
    for folder in folders:
        transitions = stored_transitions(folder)
        with torch.no_grad():
            for t in transitions[len(transitions) // 2:]:
                p = torch.softmax(policy(t["state"].float()), -1)
                preference = p[:, 2] - p[:, 0]
                for name, mask in groups.items():
                    out[name].append(preference[mask].mean().item())
    return {name: sum(v) / len(v) for name, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("policy", help="an ala_controller.pt")
    parser.add_argument("--runs", default="work/ala_hold20", help="an ala_credit_signal.py --work folder")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(1, 11)))
    parser.add_argument("--settings", nargs="+", default=["pairflip40", "clean"])
    args = parser.parse_args()
    policy = load_controller(args.policy).policy
    groups = pair_groups("pairflip40")  # the same pairs on clean data: a control
    for setting in args.settings:
        folders = [os.path.join(args.runs, setting, f"seed{seed}") for seed in args.seeds]
        cells = ", ".join(f"{k} {v:+.4f}" for k, v in preferences(policy, folders, groups).items())
        print(f"{setting}: P(+) - P(-): {cells}")


if __name__ == "__main__":
    main()
