"""Benchmark of ``fairseq_dynloss.hypergrad.hypergradient`` on digits (CPU or CUDA).

One problem, one answer, every method: a student (MLP, LeNet, or ``deep``: a deep narrow MLP) is
trained for T steps of SGD (lr 0.1, momentum 0.9, batch 32) on scikit-learn's digits with a
per-class weighted cross-entropy whose 10 class-weight logits are the hyper-parameters; the outer
loss is the cross-entropy on a held-out dev set. Reported, in one run:

(a) time and peak memory of ``hypergradient`` (keep-all and sqrt-checkpointing) against the
    naive full-graph unroll, ``higher`` and ``torchopt`` (each skipped with a message when not
    importable), with the relative difference of every method's hypergradient to the naive one;
(b) the hypergradient time as a multiple of T plain training steps (torch.optim, same model),
    and that of the "floor": per step only the forward, the gradient with ``create_graph`` and
    one vector-Jacobian product through it w.r.t. (parameters, hyper-parameters), at fixed
    parameters, with no optimiser and no engine -- what every exact reverse-mode method must
    compute (the trajectory needs the gradient, the reverse pass one such product per step);
(c) peak memory against T for each memory policy, plotted to a PNG.

Peak memory is the high-water mark of tensor allocations made during the call (CPU: from the
torch profiler's allocation events; CUDA: ``torch.cuda.max_memory_allocated``), measured in a
separate run from the timings. Times are the best of ``--repeats`` rounds in which every method
runs once, interleaved (the machine may be shared; interference only adds time); on CUDA each
run ends with a synchronisation.

Usage::

    OMP_NUM_THREADS=1 python scripts/bench_hypergrad.py --models mlp lenet \\
        --plot docs/img/hypergrad_memory.png
    python scripts/bench_hypergrad.py --models mlp lenet --device cuda   # scripts/gpu_check.sh
"""

from __future__ import annotations

import argparse
import copy
import gc
import time
from typing import Callable, Dict, Optional

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.profiler import ProfilerActivity, profile

from fairseq_dynloss.hypergrad import SGD, FunctionalModule, hypergradient, naive_hypergradient

LR, MOMENTUM, BATCH, CLASSES = 0.1, 0.9, 32, 10


class MLP(nn.Module):
    """64 -> 144 -> 10 (10.8k parameters)."""

    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(64, 144)
        self.out = nn.Linear(144, CLASSES)

    def forward(self, x):  # x: (N, 64)
        return self.out(torch.relu(self.hidden(x)))


class LeNet(nn.Module):
    """LeNet-style for 8x8 digits: conv 3x3 (6) -> pool -> conv 3x3 (16) -> fc 120 -> fc 10."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 3, padding=1)
        self.conv2 = nn.Conv2d(6, 16, 3, padding=1)
        self.fc1 = nn.Linear(16 * 2 * 2, 120)
        self.fc2 = nn.Linear(120, CLASSES)

    def forward(self, x):  # x: (N, 64)
        h = F.max_pool2d(torch.relu(self.conv1(x.view(-1, 1, 8, 8))), 2)
        h = F.max_pool2d(torch.relu(self.conv2(h)), 2)
        return self.fc2(torch.relu(self.fc1(h.flatten(1))))


class DeepMLP(nn.Module):
    """64 -> 32 -> 16 x (32 -> 32) -> 10 (19.3k parameters): many small layers, where per-module
    Python and autograd-node overhead, not arithmetic, is the cost."""

    def __init__(self, depth: int = 16, width: int = 32):
        super().__init__()
        self.inp = nn.Linear(64, width)
        self.hidden = nn.ModuleList(nn.Linear(width, width) for _ in range(depth))
        self.out = nn.Linear(width, CLASSES)

    def forward(self, x):  # x: (N, 64)
        h = torch.relu(self.inp(x))
        for layer in self.hidden:
            h = torch.relu(layer(h))
        return self.out(h)


MODELS = {"mlp": MLP, "lenet": LeNet, "deep": DeepMLP}


class Problem:
    """The digits problem: data, student, hyper-parameters and both losses."""

    def __init__(self, model_name: str, max_steps: int, dtype: torch.dtype, device: torch.device, seed: int = 0):
        digits = load_digits()
        x = torch.tensor(digits.data / 16.0, dtype=dtype, device=device)
        y = torch.tensor(digits.target, device=device)
        # Indices and initial values come from CPU generators: every device gets the same problem.
        gen = torch.Generator().manual_seed(seed)
        order = torch.randperm(len(y), generator=gen).to(device)
        train, dev = order[:1300], order[1300:]
        self.x_dev, self.y_dev = x[dev], y[dev]
        self.batches = []
        for _ in range(max_steps):
            idx = train[torch.randint(0, len(train), (BATCH,), generator=gen).to(device)]
            self.batches.append((x[idx], y[idx]))
        torch.manual_seed(seed)
        self.model = MODELS[model_name]().to(dtype).to(device)
        self.num_params = sum(p.numel() for p in self.model.parameters())
        self.hparams = {"w": (0.1 * torch.randn(CLASSES, generator=gen, dtype=dtype)).to(device)}

    @staticmethod
    def weighted_ce(logits: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """logits: (N, C), y: (N,), w: (C,) class-weight logits -> scalar."""
        return (F.cross_entropy(logits, y, reduction="none") * torch.softmax(w, 0)[y] * CLASSES).mean()

    def dev_loss(self, logits: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, self.y_dev)


def run_plain(problem: Problem, steps: int) -> None:
    """T plain training steps (the unit of cost)."""
    model = copy.deepcopy(problem.model)
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    for x, y in problem.batches[:steps]:
        opt.zero_grad()
        problem.weighted_ce(model(x), y, problem.hparams["w"]).backward()
        opt.step()


def run_floor(problem: Problem, steps: int) -> None:
    """Per step: forward, gradient with ``create_graph``, one VJP through it (see (b) above)."""
    model = copy.deepcopy(problem.model)
    params = list(model.parameters())
    w = problem.hparams["w"].clone().requires_grad_(True)
    direction = [torch.ones_like(p) for p in params]
    for x, y in problem.batches[:steps]:
        grads = torch.autograd.grad(problem.weighted_ce(model(x), y, w), params, create_graph=True)
        torch.autograd.grad(grads, params + [w], grad_outputs=direction)


def run_ours(problem: Problem, steps: int, naive: bool = False, **policy) -> torch.Tensor:
    student = FunctionalModule(problem.model)

    def inner(params, hparams, batch, step):
        x, y = batch
        return problem.weighted_ce(student(params, x), y, hparams["w"])

    def outer(params):
        return problem.dev_loss(student(params, problem.x_dev))

    args = (inner, outer, student.params(), problem.hparams, problem.batches[:steps], SGD(lr=LR, momentum=MOMENTUM))
    res = naive_hypergradient(*args) if naive else hypergradient(*args, **policy)
    return res.grads["w"]


def run_higher(problem: Problem, steps: int) -> torch.Tensor:
    import higher

    model = copy.deepcopy(problem.model)
    w = problem.hparams["w"].clone().requires_grad_(True)
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    with higher.innerloop_ctx(model, opt, copy_initial_weights=True) as (fmodel, diffopt):
        for x, y in problem.batches[:steps]:
            diffopt.step(problem.weighted_ce(fmodel(x), y, w))
        return torch.autograd.grad(problem.dev_loss(fmodel(problem.x_dev)), w)[0]


def run_torchopt(problem: Problem, steps: int) -> torch.Tensor:
    import torchopt

    model = copy.deepcopy(problem.model)
    w = problem.hparams["w"].clone().requires_grad_(True)
    opt = torchopt.MetaSGD(model, lr=LR, momentum=MOMENTUM)
    for x, y in problem.batches[:steps]:
        opt.step(problem.weighted_ce(model(x), y, w))
    return torch.autograd.grad(problem.dev_loss(model(problem.x_dev)), w)[0]


def available(module: str) -> bool:
    try:
        __import__(module)
        return True
    except ImportError as err:
        print(f"[skip] {module} is not importable ({err}); its rows are left out")
        return False


def best_times(fns: Dict[str, Callable[[], object]], repeats: int, device: torch.device) -> Dict[str, float]:
    """The fastest of ``repeats`` runs of each function, run in turn in each round.

    Interleaving puts every method under the same interference (the machine is shared), and
    interference only adds time, hence the minimum.
    """
    best = {name: float("inf") for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            gc.collect()
            start = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def peak_bytes(fn: Callable[[], object], device: torch.device) -> int:
    """High-water mark of the tensor memory allocated on ``device`` while ``fn`` runs."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted(
        (e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"
    )
    live = peak = 0
    for _, nbytes in events:
        live += nbytes
        peak = max(peak, live)
    return peak


def rel_diff(got: torch.Tensor, want: torch.Tensor) -> float:
    return ((got - want).norm() / want.norm()).item()


def benchmark_model(model_name: str, args: argparse.Namespace) -> Dict[str, Dict[int, float]]:
    device = args.device
    problem = Problem(model_name, max(args.steps + args.memory_steps), args.dtype, device)
    print(f"\n## {model_name}: {problem.num_params} parameters, {args.dtype}, {device}, SGD lr {LR} "
          f"momentum {MOMENTUM}, batch {BATCH}, hparams: {CLASSES} class-weight logits\n")
    methods: Dict[str, Callable[[int], Optional[torch.Tensor]]] = {
        "ours keep-all": lambda T: run_ours(problem, T),
        "ours ckpt sqrt": lambda T: run_ours(problem, T, checkpoint_every="sqrt"),
        "naive unroll": lambda T: run_ours(problem, T, naive=True),
    }
    if available("higher"):
        methods["higher"] = lambda T: run_higher(problem, T)
    if available("torchopt"):
        methods["torchopt"] = lambda T: run_torchopt(problem, T)
    baselines = {"plain T steps": lambda T: run_plain(problem, T), "floor (F+B+VJP)": lambda T: run_floor(problem, T)}

    # Warm-up: the first call of each method pays one-off costs (allocator, lazy imports, JIT).
    for fn in list(baselines.values()) + list(methods.values()):
        fn(10)

    print("| T | method | time (s) | x plain | x higher | peak MB | rel. diff to naive | |hypergrad| |")
    print("|---|---|---|---|---|---|---|---|")
    for steps in args.steps:
        times = best_times({name: lambda fn=fn: fn(steps) for name, fn in {**baselines, **methods}.items()},
                           args.repeats, device)
        plain_time = times["plain T steps"]

        def row(name: str, fn: Callable[[int], Optional[torch.Tensor]]) -> str:
            higher_ratio = f"{times[name] / times['higher']:.2f}" if "higher" in times else "n/a"
            return (f"| {steps} | {name} | {times[name]:.3f} | {times[name] / plain_time:.2f} | {higher_ratio} | "
                    f"{peak_bytes(lambda: fn(steps), device) / 2**20:.2f} |")

        for name, fn in baselines.items():
            print(row(name, fn) + " | |")
        reference = methods["naive unroll"](steps)
        for name, fn in methods.items():
            grad = fn(steps)
            print(row(name, fn) + f" {rel_diff(grad, reference):.1e} | {grad.norm().item():.3g} |")

    policies = {
        "keep all": {},
        "checkpoint every sqrt(T)": {"checkpoint_every": "sqrt"},
        "checkpoint every 10": {"checkpoint_every": 10},
        "checkpoint every 1 (every state)": {"checkpoint_every": 1},
        "truncate 10 (keep all)": {"truncate": 10},
    }
    curves: Dict[str, Dict[int, float]] = {name: {} for name in list(policies) + ["naive unroll", "plain training"]}
    for steps in args.memory_steps:
        for name, policy in policies.items():
            curves[name][steps] = peak_bytes(lambda: run_ours(problem, steps, **policy), device) / 2**20
        curves["naive unroll"][steps] = peak_bytes(lambda: run_ours(problem, steps, naive=True), device) / 2**20
        curves["plain training"][steps] = peak_bytes(lambda: run_plain(problem, steps), device) / 2**20
    print("\n| policy | " + " | ".join(f"T={t}" for t in args.memory_steps) + " |  (peak MB)")
    print("|---|" + "---|" * len(args.memory_steps))
    for name, curve in curves.items():
        print(f"| {name} | " + " | ".join(f"{curve[t]:.2f}" for t in args.memory_steps) + " |")

    last = args.memory_steps[-1]
    sqrt_peak = curves["checkpoint every sqrt(T)"][last]
    print(f"\nTargets ({model_name}), T={args.steps[-1]} unless stated:")
    if "higher" in times:
        ratio = {name: times[name] / times["higher"] for name in ("ours keep-all", "ours ckpt sqrt", "floor (F+B+VJP)")}
        print(f"* time / higher: ours keep-all {ratio['ours keep-all']:.2f}, ours ckpt sqrt "
              f"{ratio['ours ckpt sqrt']:.2f}, floor (F+B+VJP) {ratio['floor (F+B+VJP)']:.2f} (target <= 0.5)")
    print(f"* checkpoint sqrt peak memory at T={last}: {sqrt_peak / curves['keep all'][last]:.3f} of keep-all, "
          f"{sqrt_peak / curves['checkpoint every 1 (every state)'][last]:.3f} of every state (target <= 0.25)")
    print(f"* time / T plain steps: keep-all {times['ours keep-all'] / plain_time:.2f}, checkpoint sqrt "
          f"{times['ours ckpt sqrt'] / plain_time:.2f}, floor {times['floor (F+B+VJP)'] / plain_time:.2f} (target <= 4)")
    return curves


def plot(curves_by_model: Dict[str, Dict[str, Dict[int, float]]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves_by_model), figsize=(6 * len(curves_by_model), 4.5), squeeze=False)
    for ax, (model_name, curves) in zip(axes[0], curves_by_model.items()):
        for name, curve in curves.items():
            # The baselines dashed: keep-all's curve lies exactly on the naive unroll's.
            style = {"linestyle": "--", "marker": "x"} if name in ("naive unroll", "plain training") else {"marker": "o"}
            ax.plot(list(curve), list(curve.values()), label=name, **style)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("T (inner steps)")
        ax.set_ylabel("peak tensor memory (MB)")
        ax.set_title(f"hypergradient peak memory vs T ({model_name})")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"\nwrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["mlp"], choices=list(MODELS))
    parser.add_argument("--steps", nargs="+", type=int, default=[10, 50, 200], help="T for the timing table")
    parser.add_argument("--memory-steps", nargs="+", type=int, default=[10, 25, 50, 100, 200], help="T for the memory curves")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--plot", default="docs/img/hypergrad_memory.png")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    args = parser.parse_args()
    args.dtype = getattr(torch, args.dtype)
    args.device = torch.device(args.device)
    if args.device.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device} but torch.cuda.is_available() is False (torch {torch.__version__})")
    torch.set_num_threads(args.threads)
    curves = {name: benchmark_model(name, args) for name in args.models}
    plot(curves, args.plot)


if __name__ == "__main__":
    main()
