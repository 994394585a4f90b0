"""Benchmark: batched sentence BLEU on token ids vs a ``sacrebleu.sentence_bleu`` loop.

Pairs look like NMT output: references of ~30 tokens drawn from a Zipfian vocabulary, and
hypotheses that are noisy copies of them (substitutions, length changes), fairseq-style
right-padded with ``eos``. Both sides get their inputs ready-made (tensors for ours, the
space-joined id strings for sacrebleu), so only scoring is timed. Scores must be identical.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_bleu.py
"""

from __future__ import annotations

import argparse
import statistics
import time

import sacrebleu
import torch

from fairseq_dynloss.metrics import sentence_bleu

PAD, EOS, FIRST_WORD = 1, 2, 4


def make_pairs(num_pairs: int, length: int, vocab: int, noise: float, seed: int):
    """Token-id lists (hypothesis, reference) of about ``length`` tokens each."""
    generator = torch.Generator().manual_seed(seed)
    zipf = 1.0 / torch.arange(1, vocab + 1, dtype=torch.float64)
    spread = max(1, length // 6)
    hyps, refs = [], []
    for _ in range(num_pairs):
        ref_len = length + int(torch.randint(-spread, spread + 1, (1,), generator=generator))
        ref = torch.multinomial(zipf, ref_len, replacement=True, generator=generator) + FIRST_WORD
        hyp_len = ref_len + int(torch.randint(-spread, spread + 1, (1,), generator=generator))
        hyp = torch.multinomial(zipf, hyp_len, replacement=True, generator=generator) + FIRST_WORD
        keep = torch.rand(min(ref_len, hyp_len), generator=generator) > noise
        hyp[: keep.numel()][keep] = ref[: keep.numel()][keep]
        hyps.append(hyp.tolist())
        refs.append(ref.tolist())
    return hyps, refs


def to_batch(sentences) -> torch.Tensor:
    """Right-padded (N, max_len + 1) tensor with ``EOS`` after each sentence, as fairseq."""
    width = max(len(s) for s in sentences) + 1
    return torch.tensor([s + [EOS] + [PAD] * (width - len(s) - 1) for s in sentences])


def time_call(function, repeats: int) -> float:
    """Median wall time in seconds over ``repeats`` calls (after one warm-up call)."""
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=4096)
    parser.add_argument("--length", type=int, default=30)
    parser.add_argument("--vocab", type=int, default=1000)
    parser.add_argument("--noise", type=float, default=0.3, help="hypothesis substitution rate")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs; the median is shown")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    hyps, refs = make_pairs(args.pairs, args.length, args.vocab, args.noise, args.seed)
    hyp_batch = to_batch(hyps).to(args.device)
    ref_batch = to_batch(refs).to(args.device)
    hyp_text = [" ".join(map(str, h)) for h in hyps]
    ref_text = [" ".join(map(str, r)) for r in refs]

    def ours():
        scores = sentence_bleu(hyp_batch, ref_batch, pad=PAD, eos=EOS)
        if scores.is_cuda:
            torch.cuda.synchronize()
        return scores

    def theirs():
        return [
            sacrebleu.sentence_bleu(h, [r], tokenize="none").score
            for h, r in zip(hyp_text, ref_text)
        ]

    ours_s = time_call(ours, repeats=max(args.repeats, 20))
    theirs_s = time_call(theirs, repeats=args.repeats)
    difference = (ours().cpu() - torch.tensor(theirs(), dtype=torch.float64)).abs().max().item()
    mean_bleu = ours().mean().item()

    print(f"pairs={args.pairs} length~{args.length} vocab={args.vocab} device={args.device} "
          f"torch_threads={torch.get_num_threads()} mean_sentence_bleu={mean_bleu:.2f}")
    print(f"batched sentence_bleu (torch): {ours_s * 1e3:9.2f} ms")
    print(f"sacrebleu.sentence_bleu loop:  {theirs_s * 1e3:9.2f} ms")
    print(f"speed-up: {theirs_s / ours_s:.1f}x")
    print(f"max |score difference|: {difference:.3g}")


if __name__ == "__main__":
    main()
