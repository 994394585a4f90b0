#!/usr/bin/env python
"""Time per training update of ``dynamic_loss`` (each Phi parametrisation) vs
``label_smoothed_cross_entropy`` on the same fairseq transformer and the same batches.

    python scripts/bench_criterion.py                 # 8k vocabulary, transformer 256/1024 x 3+3
    python scripts/bench_criterion.py --vocab 32000 --parametrisations diag_lowrank,bucketed
    python scripts/bench_criterion.py --forms prob --parametrisations diag_lowrank,bucketed
    python scripts/bench_criterion.py --threads 1 --clock cpu     # on a busy machine

One update = forward + loss + backward + Adam step, as fairseq's trainer does it. Criteria are
measured interleaved (round-robin over ``--rounds`` rounds) so that machine noise hits all of them
alike; the table reports the median time per update and its ratio to label-smoothed CE measured
in the same run. ``--clock cpu`` times with the thread's CPU time (``--threads 1`` only), which
other processes' load does not inflate. Also reports the loss alone (criterion forward + backward from fixed decoder
outputs), which isolates the cost of ``Phi[y] . log p`` (paper form) or ``log (p^T Phi)_y`` (prob).
"""

import argparse
import os
import statistics
import sys
import tempfile

import torch

import fairseq  # noqa: F401  (before the plugin, so that it registers)
import fairseq_dynloss  # noqa: F401
from bench_clock import CLOCKS, now
from fairseq import options, tasks
from fairseq.dataclass.utils import convert_namespace_to_omegaconf

CRITERIA = {
    "label_smoothed_cross_entropy": ["--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1"],
    "dynamic_loss full": ["--criterion", "dynamic_loss", "--phi-parametrisation", "full"],
    "dynamic_loss diag_lowrank r=32": ["--criterion", "dynamic_loss", "--phi-parametrisation", "diag_lowrank", "--phi-rank", "32"],
    "dynamic_loss bucketed G=8": ["--criterion", "dynamic_loss", "--phi-parametrisation", "bucketed", "--phi-buckets", "8"],
    "dynamic_loss prob diag_lowrank r=32": ["--criterion", "dynamic_loss", "--dynamic-form", "prob",
                                            "--phi-parametrisation", "diag_lowrank", "--phi-rank", "32"],
    "dynamic_loss prob bucketed G=8": ["--criterion", "dynamic_loss", "--dynamic-form", "prob",
                                       "--phi-parametrisation", "bucketed", "--phi-buckets", "8"],
}


def write_dictionary(folder, vocab):
    """A joined dictionary of ``vocab - 4`` symbols with Zipfian counts (fairseq adds 4 specials)."""
    lines = [f"w{i} {max(1, int(1e6 / (i + 1)))}\n" for i in range(vocab - 4)]
    for side in ("src", "tgt"):
        with open(os.path.join(folder, f"dict.{side}.txt"), "w") as handle:
            handle.writelines(lines)


def build(folder, args, criterion_args):
    parser = options.get_training_parser()
    ns = options.parse_args_and_arch(parser, [
        folder, "--user-dir", os.path.dirname(fairseq_dynloss.__file__), "--task", "translation",
        "-s", "src", "-t", "tgt", "--cpu", "--arch", "transformer", "--share-all-embeddings",
        "--encoder-layers", str(args.layers), "--decoder-layers", str(args.layers),
        "--encoder-embed-dim", str(args.dim), "--decoder-embed-dim", str(args.dim),
        "--encoder-ffn-embed-dim", str(4 * args.dim), "--decoder-ffn-embed-dim", str(4 * args.dim),
        "--encoder-attention-heads", "4", "--decoder-attention-heads", "4", "--dropout", "0.1",
        *criterion_args])
    cfg = convert_namespace_to_omegaconf(ns)
    task = tasks.setup_task(cfg.task)
    return task, cfg


def random_batches(task, count, tokens, length, seed):
    generator = torch.Generator().manual_seed(seed)
    dictionary = task.target_dictionary
    batches = []
    sentences = max(1, tokens // length)
    for _ in range(count):
        src = torch.randint(dictionary.nspecial, len(dictionary), (sentences, length), generator=generator)
        tgt = torch.randint(dictionary.nspecial, len(dictionary), (sentences, length), generator=generator)
        tgt[:, -1] = dictionary.eos()
        prev = torch.cat([torch.full((sentences, 1), dictionary.eos()), tgt[:, :-1]], dim=1)
        batches.append({
            "net_input": {"src_tokens": src, "src_lengths": torch.full((sentences,), length),
                          "prev_output_tokens": prev},
            "target": tgt, "ntokens": sentences * length, "nsentences": sentences,
        })
    return batches


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=2048, help="target tokens per batch")
    parser.add_argument("--length", type=int, default=32, help="sentence length")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--parametrisations", default="full,diag_lowrank,bucketed",
                        help="comma-separated subset of dynamic_loss parametrisations")
    parser.add_argument("--clock", choices=CLOCKS, default="wall",
                        help="wall: perf_counter; cpu: this thread's CPU time (needs --threads 1)")
    parser.add_argument("--forms", default="paper,prob",
                        help="comma-separated subset of dynamic_loss forms (paper, prob)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.clock == "cpu" and args.threads != 1:
        parser.error("--clock cpu measures one thread: use it with --threads 1")
    clock = now(args.clock)
    wanted, forms = set(args.parametrisations.split(",")), set(args.forms.split(","))

    def chosen(name):
        words = name.split()
        if len(words) == 1:  # the label-smoothed CE baseline
            return True
        parametrisation = next(w for w in words if w in ("full", "diag_lowrank", "bucketed"))
        return parametrisation in wanted and ("prob" if "prob" in words else "paper") in forms

    criteria = {k: v for k, v in CRITERIA.items() if chosen(k)}

    folder = tempfile.mkdtemp(prefix="bench_criterion_")
    write_dictionary(folder, args.vocab)
    runs = {}
    for name, criterion_args in criteria.items():
        task, cfg = build(folder, args, criterion_args)
        torch.manual_seed(0)
        model = task.build_model(cfg.model).train()
        criterion = task.build_criterion(cfg.criterion)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
        runs[name] = (task, model, criterion, optimizer)
    batches = random_batches(next(iter(runs.values()))[0], args.rounds + args.warmup, args.tokens, args.length, seed=1)

    update_times = {name: [] for name in runs}
    loss_times = {name: [] for name in runs}
    names = list(runs)
    for step, batch in enumerate(batches):
        # Rotate the order every round: no criterion always runs first (cold caches).
        for name in names[step % len(names):] + names[: step % len(names)]:
            task, model, criterion, optimizer = runs[name]
            start = clock()
            optimizer.zero_grad(set_to_none=True)
            loss, _, _ = criterion(model, batch)
            loss.backward()
            optimizer.step()
            elapsed = clock() - start
            # Loss alone: criterion on fixed decoder features (no encoder/decoder cost).
            with torch.no_grad():
                features = model.decoder.extract_features(batch["net_input"]["prev_output_tokens"],
                                                          model.encoder(batch["net_input"]["src_tokens"],
                                                                        batch["net_input"]["src_lengths"]))[0]
            features.requires_grad_(True)
            start_loss = clock()
            logits = model.decoder.output_layer(features)
            loss = _criterion_loss(criterion, model, (logits, None), batch)
            loss.backward()
            loss_elapsed = clock() - start_loss
            if step >= args.warmup:
                update_times[name].append(elapsed)
                loss_times[name].append(loss_elapsed)

    base_update = statistics.median(update_times["label_smoothed_cross_entropy"])
    base_loss = statistics.median(loss_times["label_smoothed_cross_entropy"])
    print(f"# bench_criterion: vocab {args.vocab}, transformer dim {args.dim} x {args.layers}+{args.layers} "
          f"layers, {args.tokens} target tokens/batch, {args.rounds} rounds, {args.threads} threads, "
          f"{args.clock} clock, "
          f"torch {torch.__version__}\n")
    print("| criterion | ms / update | ratio vs LS-CE | ms loss (+output layer) fwd+bwd | ratio |")
    print("|---|---|---|---|---|")
    for name in runs:
        update = statistics.median(update_times[name])
        loss = statistics.median(loss_times[name])
        print(f"| {name} | {1000 * update:.1f} | {update / base_update:.3f}x | {1000 * loss:.1f} | {loss / base_loss:.3f}x |")
    sys.stdout.flush()


def _criterion_loss(criterion, model, net_output, batch):
    """The loss of ``criterion`` for a given decoder output (what ``forward`` does after the model)."""
    if hasattr(criterion, "phi"):
        from fairseq_dynloss.losses import dynamic_loss

        lprobs, target = criterion.get_lprobs_and_target(model, net_output, batch)
        return dynamic_loss(lprobs, target, criterion.phi, scale=criterion.scale,
                            nll_weight=criterion.cfg.nll_weight, ignore_index=criterion.padding_idx,
                            form=criterion.form).loss
    return criterion.compute_loss(model, net_output, batch)[0]


if __name__ == "__main__":
    main()
