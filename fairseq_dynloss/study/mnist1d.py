"""The study's ``mnist1d`` part: every loss on MNIST-1D, clean and under label noise, paired seeds.

Settings (``NOISE``): clean; 40 % pair-flip (i -> i+1, the pattern the methods were developed
on); 50 % symmetric and a random sparse asymmetric matrix (40 %, ``scripts/make_noise_matrix.py``
seed 0), which no method was tuned on. Noise touches the training labels only; validation and
test stay clean. Every method runs the same seeds, so each table is a paired comparison with CE
(``report.paired_table``); forward correction with the true noise matrix is the oracle whose gap
to CE a method may close.

Budget (``PLAN``): the whole part must regenerate in at most 150 minutes on 2 cores. Every
table of every setting x model with every row would take ~4 hours (measured job times: an MLP
run 15-60 s, L2T-DLF ~3-5x CE, the CNN 2-3x the MLP), so the default runs the MLP on all four
settings and the CNN on the pair-flip setting only; the development setting (MLP, pair-flip)
gets every row (both loss forms, every control); the held-out patterns and clean data get CE, the
cheap baselines, the fixed-Phi control, the oracle and both learned losses in the default form.
``--mnist1d-settings`` / ``--mnist1d-models`` / ``--mnist1d-methods`` replace the plan by their
product.

Hyper-parameters of the cheap baselines are chosen on validation, never on test: label smoothing
and Poly-1 run a small grid on the first ``GRID_SEEDS`` seeds, the value with the best mean
best-validation error is then run on every seed (the grid runs of those seeds are reused).
"""

from __future__ import annotations

import os
from typing import Dict, List, Sequence, Tuple

from .jobs import Job, summary_of
from .report import MethodRow, paired_table, verdict, versus_paired
from .runs import run_summary

# setting -> task.label_noise overrides ({matrix} is the CSV written by the study)
NOISE: Dict[str, List[str]] = {
    "clean": [],
    "pairflip40": ["task.label_noise.kind=pairflip", "task.label_noise.rate=0.4"],
    "symmetric50": ["task.label_noise.kind=symmetric", "task.label_noise.rate=0.5"],
    "sparse40": ["task.label_noise.kind=matrix", "task.label_noise.matrix={matrix}"],
}
SPARSE = dict(rate=0.4, seed=0, max_targets=2)

# method -> dynloss-train overrides. ``dynamic_fixed`` is the control of the learned losses: the
# same prob-form loss with Phi held at the identity (cross-entropy up to round-off).
METHODS: Dict[str, List[str]] = {
    "ce": ["loss=ce"],
    "label_smoothing": ["loss=label_smoothing"],
    "poly1": ["loss=poly1"],
    "dynamic_fixed": ["loss=dynamic", "loss.form=prob"],
    "forward_corrected": ["loss=forward_corrected"],
    "l2t": ["loss=dynamic", "loss.form=prob", "teacher=l2t"],
    "l2t_paper": ["loss=dynamic", "loss.form=paper", "loss.nll_weight=0.5", "teacher=l2t"],
    "lr_scale": ["loss=dynamic", "loss.form=prob", "teacher=l2t", "teacher.kind=lr_scale"],
    "ala": ["loss=dynamic", "loss.form=prob", "controller=ala"],
    "ala_paper": ["loss=dynamic", "loss.form=paper", "loss.nll_weight=0.5", "controller=ala"],
    "ala_random": ["loss=dynamic", "loss.form=prob", "controller=ala", "controller.state=random"],
}
# Baselines whose one hyper-parameter is chosen on validation: (override key, grid).
GRIDS: Dict[str, Tuple[str, Sequence[float]]] = {
    "label_smoothing": ("loss.epsilon", (0.05, 0.1, 0.2, 0.3)),
    "poly1": ("loss.epsilon", (-1.0, 1.0, 2.0)),
}
GRID_SEEDS = 3
# The default tables, (setting, model) -> rows (module docstring: the 150-minute budget).
CORE = ["ce", "label_smoothing", "poly1", "dynamic_fixed", "forward_corrected", "l2t", "ala"]
EVERY = CORE + ["l2t_paper", "lr_scale", "ala_paper", "ala_random"]
PLAN: Dict[Tuple[str, str], List[str]] = {
    ("clean", "mnist1d_mlp"): [m for m in CORE if m != "forward_corrected"],  # no noise: = CE
    ("pairflip40", "mnist1d_mlp"): EVERY,
    ("symmetric50", "mnist1d_mlp"): CORE,
    ("sparse40", "mnist1d_mlp"): CORE,
    ("pairflip40", "mnist1d_cnn"): CORE + ["lr_scale"],
}
# Rows every learned loss is also compared with (paired), in its notes.
CONTROLS = ("dynamic_fixed", "lr_scale", "ala_random")
NOTES = {
    "dynamic_fixed": "control: prob form, Phi = I (= CE)",
    "forward_corrected": "oracle: knows the true noise matrix",
    "l2t_paper": "the papers' loss form (+ 0.5 NLL)",
    "ala_paper": "the papers' loss form (+ 0.5 NLL)",
    "lr_scale": "control: meta-learns only an lr multiplier",
    "ala_random": "ablation: random state instead of the confusion matrix",
}


def cells(args) -> List[Tuple[str, str, List[str]]]:
    """The tables to make, as (setting, model, methods): ``PLAN``'s tables unless the arguments
    name settings or models (``None`` = not given), then their product (a missing one taken from
    the plan); named methods replace every table's rows. Forward correction is the identity
    without noise, so clean has no oracle row."""
    settings, models, methods = args.mnist1d_settings, args.mnist1d_models, args.mnist1d_methods
    if settings is None and models is None:
        chosen = list(PLAN)
    else:
        chosen = [(s, m) for s in (settings or dict.fromkeys(s for s, _ in PLAN))
                  for m in (models or dict.fromkeys(m for _, m in PLAN))]
    out = []
    for setting, model in chosen:
        rows = methods if methods is not None else PLAN.get((setting, model), CORE)
        out.append((setting, model, [m for m in rows
                                     if not (m == "forward_corrected" and setting == "clean")]))
    return out


def run_dir(work: str, setting: str, model: str, method: str, seed: int) -> str:
    return os.path.join(work, "mnist1d", setting, f"{model}_{method}_seed{seed}")


def job_name(setting: str, model: str, name: str, seed: int) -> str:
    """The job of one run (``name``: a method, or a gridded baseline's ``grid_name``)."""
    return f"mnist1d_{setting}_{model}_{name}_seed{seed}"


def method_overrides(method: str, value=None) -> List[str]:
    """The overrides of ``method``; a gridded baseline gets its value (and a folder suffix)."""
    overrides = list(METHODS[method])
    if value is not None:
        overrides.append(f"{GRIDS[method][0]}={value}")
    return overrides


def grid_name(method: str, value) -> str:
    return f"{method}_eps{value:g}"


def train_command(python: str, work: str, setting: str, model: str, overrides: List[str],
                  seed: int, folder: str, steps: int, lr: float) -> List[str]:
    """The dynloss-train command line of one run: ``model`` on MNIST-1D under ``setting``'s label
    noise, Adam at ``lr`` for ``steps`` updates, with a method's ``overrides``."""
    matrix = os.path.join(work, "mnist1d", "noise_sparse40.csv")
    noise = [o.format(matrix=matrix) for o in NOISE[setting]]
    return [python, "-m", "fairseq_dynloss.trainer", "task=mnist1d", f"model={model}",
            "optim=adam", f"optim.lr={lr}", f"task.max_steps={steps}", *noise, *overrides,
            f"seed={seed}", "progress=false", "tensorboard=false", "overwrite=true", "device=cpu",
            f"hydra.run.dir={folder}"]


def jobs(args, work: str, python: str, env: Dict[str, str], grid_choice: Dict = None) -> List[Job]:
    """Every run of the part. Without ``grid_choice`` the gridded baselines run their whole grid
    on the first ``GRID_SEEDS`` seeds only (phase 1); with it, ``{(setting, model, method):
    value}``, they run the chosen value on every seed (phase 2)."""
    out = []
    for setting, model, methods in cells(args):
        for method in methods:
            if method in GRIDS:
                if grid_choice is None:
                    values = GRIDS[method][1]
                    seeds = args.mnist1d_seed_list[:GRID_SEEDS]
                else:
                    values, seeds = [grid_choice[(setting, model, method)]], args.mnist1d_seed_list
            else:
                values, seeds = [None], args.mnist1d_seed_list
            for value in values:
                name = method if value is None else grid_name(method, value)
                for seed in seeds:
                    folder = run_dir(work, setting, model, name, seed)
                    command = train_command(python, work, setting, model,
                                            method_overrides(method, value), seed, folder,
                                            args.mnist1d_steps, args.mnist1d_lr)
                    out.append(Job(job_name(setting, model, name, seed), command,
                                   [os.path.join(folder, "metrics.csv")], env=env,
                                   summary=lambda folder=folder: run_summary(folder)))
    return out


def write_sparse_matrix(work: str) -> None:
    """The sparse asymmetric noise matrix of the ``sparse40`` setting (seeded, rewritten
    identically on every run)."""
    from fairseq_dynloss.data.label_noise import random_sparse_noise_matrix, write_noise_matrix

    path = os.path.join(work, "mnist1d", "noise_sparse40.csv")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_noise_matrix(path, random_sparse_noise_matrix(10, SPARSE["rate"], SPARSE["seed"],
                                                        SPARSE["max_targets"]))


def choose_grid(args, work: str) -> Dict:
    """{(setting, model, method): value} with the best mean best-validation error over the
    first ``GRID_SEEDS`` seeds (first grid value on ties)."""
    state = os.path.join(work, "state")
    choice = {}
    for setting, model, methods in cells(args):
        for method in GRIDS:
            if method not in methods:
                continue
            scores = []
            for value in GRIDS[method][1]:
                errors = [summary_of(state, job_name(setting, model, grid_name(method, value),
                                                     seed))["val_error"]
                          for seed in args.mnist1d_seed_list[:GRID_SEEDS]]
                scores.append((sum(errors) / len(errors), value))
            choice[(setting, model, method)] = min(scores, key=lambda s: s[0])[1]
    return choice


def tables(args, work: str, grid_choice: Dict) -> List[Tuple[Tuple[str, str], str]]:
    """One paired table per (setting, model): test accuracy % at the best-validation epoch, as
    ((setting, model), markdown) pairs. Reads the runs' summaries (``run_summary``) from the job
    records, so archived runs report without their folders."""
    state = os.path.join(work, "state")
    sections = []
    for setting, model, methods in cells(args):
        rows = []
        for method in methods:
            value = grid_choice.get((setting, model, method))
            name = method if value is None else grid_name(method, value)
            values, seconds = [], []
            for seed in args.mnist1d_seed_list:
                summary = summary_of(state, job_name(setting, model, name, seed))
                values.append(100.0 - summary["test_error"])
                seconds.append(summary["training_seconds"] + summary["teacher_seconds"])
            note = NOTES.get(method, "")
            if value is not None:
                note = f"eps = {value:g}, chosen on validation from {list(GRIDS[method][1])}"
            rows.append(MethodRow(method, values, seconds, note))
        for row in rows:  # a learned loss must also beat its controls, paired
            if row.name.startswith(("l2t", "ala")):
                row.note = "; ".join(filter(None, [row.note, *[
                    versus_paired(row, control) for control in rows
                    if control.name in CONTROLS and control is not row]]))
        oracle = "forward_corrected" if setting != "clean" else ""
        sections.append(((setting, model),
            f"### mnist1d, {setting}, {model}: test accuracy % at the best-validation epoch "
            f"({args.mnist1d_steps} updates)\n\n"
            + paired_table(rows, "ce", "test accuracy %", lower_is_better=False,
                           oracle=oracle)
            + "\n\n" + verdict(rows, "ce", lower_is_better=False, oracle=oracle)))
    return sections
