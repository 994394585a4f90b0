#!/usr/bin/env python
"""Time and peak memory of one L2T-DLF teacher step for an IWSLT-size student, on synthetic data.

    python scripts/gpu_teacher_step.py --device cuda --out gpu_check_results/teacher_step.md
    python scripts/gpu_teacher_step.py --device cpu --tiny          # a seconds-long CPU smoke run

The student is ``transformer_iwslt_de_en`` (shared embeddings, a joint vocabulary of ``--vocab``
types) under ``--task translation_l2t --criterion dynamic_loss`` (bucketed Phi, gated teacher),
as in ``recipes/iwslt14_de_en``. Batches are random token ids of the right shapes (``--tokens``
target tokens each): time and memory do not depend on the words. One teacher step is what
``translation_l2t`` runs (T functional Adam steps of the student, the expected-token-accuracy dev
objective, the hypergradient back through the T steps, an Adam step on theta); the baseline,
measured in the same run on the same batches, is T ordinary training updates. One line per
memory policy goes to stdout and, with ``--out``, to a markdown file.
"""

import argparse
import os
import sys
import tempfile
import time

import torch

import fairseq  # noqa: F401  (before the plugin, so that it registers)
import fairseq_dynloss  # noqa: F401
from fairseq import options, tasks
from fairseq.dataclass.utils import convert_namespace_to_omegaconf

TINY = ["--arch", "transformer", "--encoder-layers", "1", "--decoder-layers", "1",
        "--encoder-embed-dim", "32", "--decoder-embed-dim", "32", "--encoder-ffn-embed-dim", "64",
        "--decoder-ffn-embed-dim", "64", "--encoder-attention-heads", "2",
        "--decoder-attention-heads", "2"]


def write_dictionaries(folder: str, vocab: int) -> None:
    """dict.src.txt / dict.tgt.txt with ``vocab`` word types (fairseq adds its 4 specials)."""
    lines = "".join(f"w{i} {vocab - i}\n" for i in range(vocab))
    for side in ("src", "tgt"):
        with open(os.path.join(folder, f"dict.{side}.txt"), "w") as handle:
            handle.write(lines)


def synthetic_sample(dictionary, sentences: int, length: int, generator, device):
    """A fairseq translation batch of random words: (sentences, length) with eos last."""
    low, high = dictionary.nspecial, len(dictionary)
    words = lambda: torch.randint(low, high, (sentences, length - 1), generator=generator)
    eos = torch.full((sentences, 1), dictionary.eos())
    source, target = torch.cat([words(), eos], 1), torch.cat([words(), eos], 1)
    previous = torch.cat([eos, target[:, :-1]], 1)
    return {
        "id": torch.arange(sentences), "nsentences": sentences, "ntokens": sentences * length,
        "net_input": {"src_tokens": source.to(device), "src_lengths": torch.full((sentences,), length).to(device),
                      "prev_output_tokens": previous.to(device)},
        "target": target.to(device),
    }


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(fn, device, repeats: int):
    """Best wall time over ``repeats`` calls after a warm-up, and the peak memory of one call."""
    fn()
    synchronize(device)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        synchronize(device)
        return best, (torch.cuda.max_memory_allocated(device) - before) / 2**20
    return best, float("nan")  # CPU peak memory: scripts/bench_teacher.py


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--vocab", type=int, default=10000, help="joint vocabulary (word types)")
    parser.add_argument("--tokens", type=int, default=4096, help="target tokens per batch")
    parser.add_argument("--length", type=int, default=32, help="tokens per sentence (both sides)")
    parser.add_argument("--unroll", type=int, default=5, help="T, student updates per teacher step")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tiny", action="store_true", help="a tiny transformer (CPU smoke run)")
    parser.add_argument("--out", help="also write the table to this markdown file")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_teacher_step: --device cuda but torch sees no CUDA device")
    if args.unroll < 1 or args.tokens < args.length:
        raise SystemExit(f"gpu_teacher_step: --unroll {args.unroll} must be >= 1 and --tokens "
                         f"{args.tokens} >= --length {args.length}")
    arch = TINY if args.tiny else ["--arch", "transformer_iwslt_de_en"]
    policies = {"keep all": ["--hypergrad-checkpoint", "0"], "checkpoint every step": ["--hypergrad-checkpoint", "1"],
                f"truncate {min(2, args.unroll)}": ["--hypergrad-truncate", str(min(2, args.unroll))]}
    header = (f"# L2T-DLF teacher step, {'tiny transformer' if args.tiny else 'transformer_iwslt_de_en'}, "
              f"vocab {args.vocab}, {args.tokens} target tokens/batch, T={args.unroll}, {device}, "
              f"torch {torch.__version__}\n\n| policy | teacher step (s) | T plain updates (s) | ratio | "
              "peak MB teacher step | peak MB plain |\n|---|---|---|---|---|---|")
    print(header, flush=True)
    lines = [header]
    with tempfile.TemporaryDirectory() as data:
        write_dictionaries(data, args.vocab)
        for name, policy in policies.items():
            ns = options.parse_args_and_arch(options.get_training_parser(), [
                data, "--user-dir", os.path.dirname(fairseq_dynloss.__file__), "--task", "translation_l2t",
                "--source-lang", "src", "--target-lang", "tgt", *arch, "--share-all-embeddings",
                "--criterion", "dynamic_loss", "--phi-parametrisation", "bucketed", "--phi-buckets", "8",
                "--unroll-steps", str(args.unroll), "--inner-optimizer", "adam", "--inner-lr", "1e-3",
                "--optimizer", "adam", "--lr", "5e-4", "--max-update", "1000", "--dropout", "0.3",
                *policy, *(["--cpu"] if device.type == "cpu" else [])])
            cfg = convert_namespace_to_omegaconf(ns)
            task = tasks.setup_task(cfg.task)
            torch.manual_seed(0)
            model = task.build_model(cfg.model).to(device)
            criterion = task.build_criterion(cfg.criterion).to(device)
            task.learner.teacher.to(device)
            generator = torch.Generator().manual_seed(0)
            sentences = args.tokens // args.length
            batches = [synthetic_sample(task.tgt_dict, sentences, args.length, generator, device)
                       for _ in range(args.unroll)]
            task.recent = [[sample] for sample in batches]
            task.recent_features = [task.student_state(k).features(task.criterion.phi.num_classes)
                                    for k in range(len(batches))]  # s_t of those updates
            task.dev_samples = [synthetic_sample(task.tgt_dict, sentences, args.length, generator, device)]
            params = {n: p.detach().clone() for n, p in model.named_parameters()}
            optimizer = torch.optim.Adam(model.parameters(), lr=5e-4)

            def teacher_step():
                if task.unroll_and_update_teacher(model, params, 0).skipped:
                    raise SystemExit("gpu_teacher_step: non-finite hypergradient")

            def plain_updates():
                model.train()
                for sample in batches:
                    optimizer.zero_grad(set_to_none=True)
                    loss, _, _ = criterion(model, sample)
                    (loss / sample["ntokens"]).backward()
                    optimizer.step()

            teacher_s, teacher_mb = measure(teacher_step, device, args.repeats)
            plain_s, plain_mb = measure(plain_updates, device, args.repeats)
            line = (f"| {name} | {teacher_s:.3f} | {plain_s:.3f} | {teacher_s / plain_s:.1f}x | "
                    f"{teacher_mb:.0f} | {plain_mb:.0f} |")
            print(line, flush=True)
            lines.append(line)
            del model, criterion, task, optimizer
            if device.type == "cuda":
                torch.cuda.empty_cache()
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as handle:
            handle.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
