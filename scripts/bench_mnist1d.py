"""MNIST-1D costs on one CPU thread: generating the 50k-sample set (and reading it back from the
cache), and one reference run (mnist1d_mlp, CE, Adam 1e-2, batch 100, 8000 updates).

Targets (issue 13): generation <= 20 s; one MLP run <= 30 s. Wall and CPU seconds of this
process are both printed: on a shared machine the wall clock includes waiting for a core, the CPU
time is close to what a quiet machine's wall clock would be.

    OMP_NUM_THREADS=1 python scripts/bench_mnist1d.py --repeats 3
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch
from hydra import compose, initialize_config_module

from fairseq_dynloss.data.mnist1d import load_mnist1d
from fairseq_dynloss.trainer import train


def time_generation(num_samples: int) -> tuple:
    """(wall and CPU seconds to generate and cache, wall seconds to read the cache) in a fresh
    folder."""
    with tempfile.TemporaryDirectory() as folder:
        started, cpu = time.perf_counter(), time.process_time()
        load_mnist1d(folder, num_samples, 42)
        generated, generated_cpu = time.perf_counter() - started, time.process_time() - cpu
        started = time.perf_counter()
        load_mnist1d(folder, num_samples, 42)
        return generated, generated_cpu, time.perf_counter() - started


def time_reference_run(model: str, data_dir: str) -> tuple:
    """(wall seconds of ``train()`` including data loading and evaluation, its CPU seconds,
    seconds of the training phase alone, final test error)."""
    with initialize_config_module("fairseq_dynloss.trainer.conf", version_base="1.3"):
        cfg = compose("dynloss_train", overrides=[
            "task=mnist1d", f"model={model}", "optim=adam", "optim.lr=1e-2", "task.val_size=0",
            "device=cpu", "progress=false", "tensorboard=false", "plot_every=100000",
            f"data_dir={data_dir}"])
    with tempfile.TemporaryDirectory() as folder:
        started, cpu = time.perf_counter(), time.process_time()
        history = train(cfg, folder)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    return wall, cpu, sum(row["time"] for row in history), history[-1]["test_error"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=50_000)
    parser.add_argument("--model", default="mnist1d_mlp")
    parser.add_argument("--repeats", type=int, default=3, help="best of N")
    parser.add_argument("--data-dir", default=os.environ.get("DYNLOSS_DATA", "data"))
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")

    generation = [time_generation(args.samples) for _ in range(args.repeats)]
    print(f"generate {args.samples} samples: best {min(g[0] for g in generation):.1f} s wall, "
          f"{min(g[1] for g in generation):.1f} s CPU (wall runs "
          f"{' '.join(f'{g[0]:.1f}' for g in generation)}); cached read best "
          f"{min(g[2] for g in generation):.3f} s")
    load_mnist1d(args.data_dir, 5000, 42)  # the run below reads the cache, as every later run does
    runs = [time_reference_run(args.model, args.data_dir) for _ in range(args.repeats)]
    best = min(runs)
    print(f"{args.model} 8000 updates, CE: best {best[0]:.1f} s wall, {min(r[1] for r in runs):.1f} s "
          f"CPU, training phase {best[2]:.1f} s wall, test error {best[3]:.1f} % (wall runs: "
          f"{' '.join(f'{r[0]:.1f}' for r in runs)} s)")


if __name__ == "__main__":
    main()
