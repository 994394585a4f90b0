#!/usr/bin/env python
"""Wall time and peak memory of one L2T-DLF teacher step vs T plain student updates.

    bash recipes/toy/prepare.sh && python scripts/bench_teacher.py --data work/toy/data-bin

The student is the toy transformer of recipes/toy/common.sh (2+2 layers, dim 64, tied
embeddings) under ``--task translation_l2t --criterion dynamic_loss`` (bucketed Phi, gated
teacher). One teacher step = T functional Adam steps of the student + the expected-token-accuracy
dev objective + the hypergradient back through the T steps + an Adam step on theta. The baseline,
measured in the same run on the same batches, is T ordinary training updates of the real model
(forward, loss, backward, Adam step). Peak memory is the high-water mark of CPU tensor
allocations (torch profiler), measured in separate calls.
"""

import argparse
import os
import sys
import time

import torch

import fairseq  # noqa: F401  (before the plugin, so that it registers)
import fairseq_dynloss  # noqa: F401
from fairseq import options, tasks
from fairseq.dataclass.utils import convert_namespace_to_omegaconf

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_hypergrad import peak_bytes  # noqa: E402

TOY_TRANSFORMER = [
    "--arch", "transformer", "--share-all-embeddings", "--encoder-layers", "2", "--decoder-layers", "2",
    "--encoder-embed-dim", "64", "--decoder-embed-dim", "64", "--encoder-ffn-embed-dim", "256",
    "--decoder-ffn-embed-dim", "256", "--encoder-attention-heads", "4", "--decoder-attention-heads", "4",
    "--dropout", "0.1",
]


def build(data, policy_args):
    parser = options.get_training_parser()
    ns = options.parse_args_and_arch(parser, [
        data, "--user-dir", os.path.dirname(fairseq_dynloss.__file__), "--task", "translation_l2t", "--cpu",
        *TOY_TRANSFORMER, "--criterion", "dynamic_loss", "--phi-parametrisation", "bucketed",
        "--phi-buckets", "8", "--max-update", "1000", "--optimizer", "adam", "--lr", "0.003",
        "--max-tokens", "1000", "--inner-optimizer", "adam", "--inner-lr", "0.01", *policy_args])
    cfg = convert_namespace_to_omegaconf(ns)
    task = tasks.setup_task(cfg.task)
    torch.manual_seed(0)
    model = task.build_model(cfg.model)
    criterion = task.build_criterion(cfg.criterion)
    task.load_dataset("train")
    task.load_dataset("valid")
    return task, model, criterion


def train_batches(task, count):
    iterator = task.get_batch_iterator(task.dataset("train"), max_tokens=1000, seed=1).next_epoch_itr(shuffle=False)
    batches = []
    for sample in iterator:
        batches.append(sample)
        if len(batches) == count:
            return batches
    raise SystemExit(f"bench_teacher: the training set has fewer than {count} batches")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="work/toy/data-bin")
    parser.add_argument("--steps", default="4,16", help="comma-separated T values")
    parser.add_argument("--repeats", type=int, default=2, help="timed repeats (best is shown)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    if not os.path.isfile(os.path.join(args.data, "dict.tgt.txt")):
        raise SystemExit(f"bench_teacher: no binarised data in {args.data}; run recipes/toy/prepare.sh first")
    torch.set_num_threads(args.threads)
    policies = {"keep all": [], "checkpoint sqrt(T)": None, "truncate 2": ["--hypergrad-truncate", "2"]}
    print(f"# bench_teacher: toy transformer, bucketed Phi (G=8), gated teacher, Adam inner steps, "
          f"{args.threads} threads, torch {torch.__version__}\n")
    print("| T | policy | teacher step (s) | T plain updates (s) | ratio | peak MB teacher step | peak MB plain |")
    print("|---|---|---|---|---|---|---|")
    for steps in (int(s) for s in args.steps.split(",")):
        for name, policy in policies.items():
            if policy is None:
                policy = ["--hypergrad-checkpoint", str(max(1, round(steps ** 0.5)))]
            task, model, criterion = build(args.data, ["--unroll-steps", str(steps), *policy])
            batches = train_batches(task, steps)
            task.recent = [[sample] for sample in batches]  # one micro-batch per update
            task.recent_features = [task.student_state(k).features(task.criterion.phi.num_classes)
                                    for k in range(len(batches))]  # s_t of those updates
            params = {n: p.detach().clone() for n, p in model.named_parameters()}
            task.dev_samples = task._load_dev_samples(torch.device("cpu"))
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

            def teacher_step():
                task.unroll_and_update_teacher(model, params, 0)

            def plain_updates():
                model.train()
                for sample in batches:
                    optimizer.zero_grad(set_to_none=True)
                    loss, _, _ = criterion(model, sample)
                    (loss / sample["ntokens"]).backward()
                    optimizer.step()

            timings = {}
            for label, fn in (("teacher", teacher_step), ("plain", plain_updates)):
                fn()  # warm-up: first-call allocations and kernel selection
                best = float("inf")
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    fn()
                    best = min(best, time.perf_counter() - start)
                timings[label] = best
            cpu = torch.device("cpu")
            peak_teacher = peak_bytes(teacher_step, cpu) / 2**20
            peak_plain = peak_bytes(plain_updates, cpu) / 2**20
            print(f"| {steps} | {name} | {timings['teacher']:.2f} | {timings['plain']:.2f} | "
                  f"{timings['teacher'] / timings['plain']:.1f}x | {peak_teacher:.0f} | {peak_plain:.0f} |", flush=True)


if __name__ == "__main__":
    main()
