"""Could any learner see, from ALA's held per-class reward, that raising the flipped pairs pays?

Reads the runs of ``scripts/ala_credit_signal.py`` (policy frozen at uniform: every action a fair
random draw, so each comparison below is a randomised experiment) and prints three measurements
(results/tuning_ala.md, session 14):

1. **An oracle's bound.** Give the learner the answer's *feature*: which pairs (i, i+1) the 40 %
   pair-flip noise flips. Per run, the effect of a = +1 vs -1 on those elements' rewards (Welch t,
   one-sided), and the same pooled over k runs. If a run cannot show it, no in-run learner can.
2. **What the state's features predict.** A ridge regression of the reward on
   ``[1, x, a, a * x]`` (x = the policy's 11 input features), fitted leaving one seed out; on the
   held-out seed, the effect of raising where the fit says "raise" and where it says "lower", and
   how often it says "raise" for the flipped vs the other pairs.
3. **Noise or natural confusion?** Per window and row i, the lowest z(log C_ij) over j (the row's
   most confused pair) in pair-flip and in clean runs: the window-standardised state cannot tell a
   flipped pair from a clean run's most confused one if the two distributions agree.
4. **The level the standardisation removes.** From each run's final student on the (clean)
   validation split: per row i, the mean probability of the row's most confused class j != i and
   of the true class, ``P_ij = mean over class-i examples of p(j | x)``.

    python scripts/ala_learnability.py --runs work/ala_hold20 --seeds $(seq 1 20)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from typing import List, Sequence, Tuple

import torch
from scipy import stats

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ala_credit_signal import flipped_pairs, stored_transitions  # noqa: E402

from fairseq_dynloss.controllers import controlled_pairs  # noqa: E402


def run_arrays(folder: str) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A run's decisions: states (W, P, F), actions (W, P) in {-1, 0, 1}, rewards (W, P)."""
    transitions = stored_transitions(folder)
    return (torch.stack([t["state"] for t in transitions]).double(),
            torch.stack([t["action"] for t in transitions]).double(),
            torch.stack([t["reward"] for t in transitions]).double())


def raise_effect(actions: torch.Tensor, rewards: torch.Tensor) -> Tuple[float, float, float]:
    """``(E[r | a = +1] - E[r | a = -1], Welch t, one-sided p)`` over matching 1-D tensors."""
    plus, minus = rewards[actions > 0].double().numpy(), rewards[actions < 0].double().numpy()
    t, p = stats.ttest_ind(plus, minus, equal_var=False, alternative="greater")
    return float(plus.mean() - minus.mean()), float(t), float(p)


def oracle_bound(folders: Sequence[str], mask: torch.Tensor, pools: Sequence[int]) -> List[str]:
    """Lines: the effect on the ``mask`` elements per run, and pooled over consecutive groups of k runs."""
    runs = [run_arrays(folder)[1:] for folder in folders]
    single = [raise_effect(a[:, mask].flatten(), r[:, mask].flatten()) for a, r in runs]
    effects = [e for e, _, _ in single]
    lines = [f"per run: effect {statistics.fmean(effects):+.3f} (sd over runs "
             f"{statistics.stdev(effects):.3f}), median t {statistics.median(t for _, t, _ in single):+.2f}, "
             f"runs with p < 0.05: {sum(p < 0.05 for _, _, p in single)}/{len(single)}"]
    for k in pools:
        cells = []
        for g in range(len(runs) // k):
            group = runs[g * k:(g + 1) * k]
            a = torch.cat([a[:, mask].flatten() for a, _ in group])
            r = torch.cat([r[:, mask].flatten() for _, r in group])
            e, t, p = raise_effect(a, r)
            cells.append(f"{e:+.3f} (t {t:+.2f}, p {p:.3f})")
        lines.append(f"pooled over {k} runs: " + "; ".join(cells))
    return lines


def ridge(design: torch.Tensor, target: torch.Tensor, lam: float = 1.0) -> torch.Tensor:
    """argmin_w |design w - target|^2 + lam |w|^2."""
    gram = design.T @ design + lam * torch.eye(design.shape[1], dtype=design.dtype)
    return torch.linalg.solve(gram, design.T @ target)


def interaction_design(x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """(N, 2F + 2): ``[1, x, a, a * x]``; the last F + 1 weights model the action's effect."""
    ones = torch.ones(len(x), 1, dtype=x.dtype)
    return torch.cat([ones, x, a[:, None], a[:, None] * x], dim=1)


def held_out_policy(folders: Sequence[str], flipped: torch.Tensor) -> str:
    """Leave-one-run-out: the fitted effect's sign as a policy, judged on the held-out run."""
    data = [run_arrays(folder) for folder in folders]
    features = data[0][0].shape[-1]
    said_raise, said_lower, share_flipped, share_other = [], [], [], []
    for k in range(len(data)):
        train = [d for j, d in enumerate(data) if j != k]
        w = ridge(interaction_design(torch.cat([s.reshape(-1, features) for s, _, _ in train]),
                                     torch.cat([a.flatten() for _, a, _ in train])),
                  torch.cat([r.flatten() for _, _, r in train]))
        states, actions, rewards = data[k]
        up = (w[features + 1] + states @ w[features + 2:]) > 0  # (W, P): the fit's "raise"
        said_raise.append(raise_effect(actions[up], rewards[up])[0] if up.any() else float("nan"))
        said_lower.append(raise_effect(actions[~up], rewards[~up])[0] if (~up).any() else float("nan"))
        share_flipped.append(up[:, flipped].double().mean().item())
        share_other.append(up[:, ~flipped].double().mean().item())
    mean = lambda v: statistics.fmean([e for e in v if e == e])
    return (f"effect of raising where the fit says raise {mean(said_raise):+.3f}, where it says lower "
            f"{mean(said_lower):+.3f}; it says raise for {mean(share_flipped):.0%} of the flipped pairs' "
            f"decisions and {mean(share_other):.0%} of the others'")


def row_most_confused(folders: Sequence[str], num_classes: int = 10) -> torch.Tensor:
    """Per decision of the runs' second halves and per row i: min_j z(log C_ij) (feature 0)."""
    rows = controlled_pairs(num_classes)[:, 0]
    out = []
    for folder in folders:
        states = run_arrays(folder)[0]
        for s in states[len(states) // 2:]:
            out.append(torch.stack([s[rows == i, 0].min() for i in range(num_classes)]))
    return torch.cat(out)


def class_mean_probabilities(probs: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(C, C): row i = the mean of ``probs`` (N, C) over the examples with ``target`` (N,) = i."""
    return torch.stack([probs[target == i].mean(0) for i in range(num_classes)])


def final_confusion_level(folder: str) -> Tuple[float, float]:
    """(median over rows of the most confused class's P_ij, median of P_ii) of a run's final
    student (``checkpoint_last.pt``) on its validation split."""
    from omegaconf import OmegaConf

    from fairseq_dynloss.trainer.registry import build_net, build_splits

    cfg = OmegaConf.load(os.path.join(folder, "config.yaml"))
    splits = build_splits(cfg.task, cfg.get("data_dir", "~/data"))
    classes = 10
    net = build_net(cfg.model, splits.input_shape, classes)
    weights = torch.load(os.path.join(folder, "checkpoint_last.pt"), weights_only=True)["student"]
    net.load_state_dict({k[len("net."):]: v for k, v in weights.items() if k.startswith("net.")})
    x, y = splits.val.batch(torch.arange(len(splits.val)))
    with torch.no_grad():
        P = class_mean_probabilities(torch.softmax(net.eval()(x), -1), y, classes)
    off = P - 2 * torch.eye(classes)  # the diagonal out of the max
    return off.max(1).values.median().item(), P.diagonal().median().item()


def main(argv: Sequence[str] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", default="work/ala_hold20",
                        help="an ala_credit_signal.py --work folder with pairflip40/ and clean/")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(1, 21)))
    parser.add_argument("--pools", type=int, nargs="+", default=[5, 10, 20])
    args = parser.parse_args(argv)
    folders = {setting: [os.path.join(args.runs, setting, f"seed{s}") for s in args.seeds]
               for setting in ("pairflip40", "clean")}
    forward, reverse = flipped_pairs(0.4)
    print(f"# python scripts/ala_learnability.py {' '.join(sys.argv[1:] if argv is None else argv)}")
    print("1. the oracle's bound: the effect of raising, by group of pairs")
    for name, setting, mask in (("pair-flip, flipped pairs (i -> i+1)", "pairflip40", forward),
                                ("pair-flip, unflipped pairs", "pairflip40", ~forward & ~reverse),
                                ("clean, the same pairs (i, i+1)", "clean", forward)):
        for line in oracle_bound(folders[setting], mask, args.pools):
            print(f"   {name}: {line}")
    print("2. a linear model of the reward on the state's features, leave one run out (pair-flip)")
    print("   " + held_out_policy(folders["pairflip40"], forward | reverse))
    print("3. each row's most confused pair, min_j z(log C_ij), quantiles 10 / 50 / 90 %")
    for setting in ("pairflip40", "clean"):
        q = torch.quantile(row_most_confused(folders[setting]), torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64))
        print(f"   {setting}: " + " / ".join(f"{v:+.2f}" for v in q.tolist()))
    print("4. the final students on validation: median over rows of the most confused class's mean p, "
          "and of the true class's (median [range] over runs)")
    for setting in ("pairflip40", "clean"):
        levels = [final_confusion_level(folder) for folder in folders[setting]]
        cells = []
        for k, name in ((0, "most confused"), (1, "true class")):
            v = [level[k] for level in levels]
            cells.append(f"{name} {statistics.median(v):.3f} [{min(v):.3f}, {max(v):.3f}]")
        print(f"   {setting}: " + "; ".join(cells))


if __name__ == "__main__":
    main()
