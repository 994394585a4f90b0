#!/usr/bin/env bash
# The hypergradient engine and the trainers on CUDA, in one go: the exactness tests
# (tests/hypergrad with DYNLOSS_TEST_DEVICE=cuda), the benchmark (scripts/bench_hypergrad.py
# --device cuda), one L2T-DLF teacher step of an IWSLT-size transformer
# (scripts/gpu_teacher_step.py), dynloss-train on CUDA (digits LeNet with device=auto and
# device=cuda, MNIST-1D CNN; each resumed once) and a short fairseq --criterion dynamic_loss run
# on the toy corpus with fairseq-generate.
#
# Usage (from anywhere; a CUDA machine with torch, scikit-learn, matplotlib and pytest):
#     scripts/gpu_check.sh [RESULTS_DIR]
# RESULTS_DIR defaults to $OUT when set, else ./gpu_check_results. It receives:
#     env.txt                    python, torch, CUDA, GPU, git revision
#     tests_cuda.log             pytest output (skips listed with their reasons)
#     bench_cuda.md              benchmark tables (markdown), as docs/benchmarks_hypergrad.md
#     hypergrad_memory_cuda.png  peak GPU memory against T
#     teacher_step_cuda.md       one teacher step vs T plain updates, time and peak memory
#     train_cuda.log             dynloss-train runs (run folders under train_cuda/)
#     fairseq_cuda.log           toy corpus, fairseq-train dynamic_loss on CUDA, fairseq-generate
#     summary.txt                one line per phase with its exit status
# Environment: PYTHON (default .venv/bin/python if present, else python3); BENCH_ARGS (default
# "--models mlp lenet --repeats 3 --memory-steps 10 50 200", sized to finish in a few minutes);
# TEST_TIMEOUT / BENCH_TIMEOUT / TEACHER_TIMEOUT / TRAIN_TIMEOUT / FAIRSEQ_TIMEOUT in seconds
# (default 300 / 420 / 300 / 300 / 300); PHASES (default "tests bench teacher train fairseq"): the
# phases to run (a phase left out reports "skipped"). fairseq, higher and torchopt are
# optional: without them the fairseq-student tests are skipped and the benchmark leaves out the
# higher / torchopt rows (each says so).
# Exit status: 0 when every phase run passes, 1 when one fails, 2 when there is no CUDA device.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
results="${1:-${OUT:-$repo/gpu_check_results}}"
if [[ -n "${PYTHON:-}" ]]; then
    py="$PYTHON"
elif [[ -x "$repo/.venv/bin/python" ]]; then
    py="$repo/.venv/bin/python"
else
    py=python3
fi
mkdir -p "$results"
cd "$repo"
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

torch_version="$("$py" -c 'import torch; print(torch.__version__)' 2>/dev/null || echo 'no torch')"
if ! "$py" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    echo "gpu_check: no CUDA device: torch.cuda.is_available() is not True for $py (torch: $torch_version);" \
        "run it on a machine with an NVIDIA GPU and a CUDA build of torch, or set PYTHON" | tee "$results/summary.txt" >&2
    exit 2
fi

{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "git: $(git rev-parse --short HEAD 2>/dev/null || echo unknown) $(git status --porcelain 2>/dev/null | wc -l | tr -d ' ') changed files"
    "$py" -c 'import sys, torch; print("python", sys.version.split()[0]); print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version()); print("device", torch.cuda.get_device_name(0))'
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || true
} >"$results/env.txt" 2>&1
cat "$results/env.txt"

status=0
phases=" ${PHASES:-tests bench teacher train fairseq} "
wants() { [[ "$phases" == *" $1 "* ]]; }
tests_rc=skipped bench_rc=skipped teacher_rc=skipped train_rc=skipped fairseq_rc=skipped
# Each phase runs even if another fails; pipefail keeps the phase's own exit status.
set +e
if wants tests; then
    DYNLOSS_TEST_DEVICE=cuda timeout "${TEST_TIMEOUT:-300}" "$py" -m pytest -q -rs -p no:cacheprovider tests/hypergrad \
        2>&1 | tee "$results/tests_cuda.log"
    tests_rc=${PIPESTATUS[0]}
fi
if wants bench; then
    read -r -a bench_args <<<"${BENCH_ARGS:---models mlp lenet --repeats 3 --memory-steps 10 50 200}"
    timeout "${BENCH_TIMEOUT:-420}" "$py" scripts/bench_hypergrad.py --device cuda "${bench_args[@]}" \
        --plot "$results/hypergrad_memory_cuda.png" 2>&1 | tee "$results/bench_cuda.md"
    bench_rc=${PIPESTATUS[0]}
fi
if wants teacher; then
    # Issue 6: one L2T-DLF teacher step of an IWSLT-size transformer on synthetic batches.
    timeout "${TEACHER_TIMEOUT:-300}" "$py" scripts/gpu_teacher_step.py --device cuda \
        --out "$results/teacher_step_cuda.md" 2>&1 | grep -v '^INFO\|^DEBUG' | tee "$results/teacher_step_cuda.log"
    teacher_rc=${PIPESTATUS[0]}
fi

# dynloss-train on the GPU (issue 18: a bare "cuda" device crashed torch.cuda.set_device). Each
# run trains, is resumed with more epochs, and must have run on cuda:0.
train_runs() {
    local runs="$results/train_cuda" rc=0 name args
    rm -rf "$runs"
    while IFS='|' read -r name args; do
        mkdir -p "$runs"
        # shellcheck disable=SC2086  # $args is a list of overrides
        "$py" -m fairseq_dynloss.trainer progress=false tensorboard=false $args \
            hydra.run.dir="$runs/$name" 2>&1 | tee "$runs/$name.log"
        [[ ${PIPESTATUS[0]} == 0 ]] || { echo "FAILED: $name"; rc=1; continue; }
        # shellcheck disable=SC2086
        "$py" -m fairseq_dynloss.trainer progress=false tensorboard=false $args task.epochs=3 \
            resume=true hydra.run.dir="$runs/$name" 2>&1 | tee -a "$runs/$name.log"
        [[ ${PIPESTATUS[0]} == 0 ]] || { echo "FAILED: $name (resume)"; rc=1; continue; }
        # the set-up log line names the device: "... | cuda:0 x1 | 1 threads"
        grep -q "| ${EXPECT_DEVICE:-cuda:0} x1 |" "$runs/$name.log" \
            || { echo "FAILED: $name did not run on ${EXPECT_DEVICE:-cuda:0}"; rc=1; }
        "$py" - "$runs/$name/metrics.csv" "$name" <<'PY' || rc=1
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
assert len(rows) == 3, f"{sys.argv[2]}: {len(rows)} epochs in metrics.csv, expected 3"
print(f"{sys.argv[2]}: test error {float(rows[-1]['test_error']):.2f}% after {len(rows)} epochs")
PY
    done <<'RUNS'
digits_lenet_auto|task=digits model=lenet loss=ce device=auto task.epochs=2
digits_lenet_dynamic_cuda|task=digits model=lenet loss=dynamic device=cuda task.epochs=2
mnist1d_cnn_cuda|task=mnist1d model=mnist1d_cnn optim=adam optim.lr=1e-2 device=cuda task.max_steps=null task.epochs=2
RUNS
    return $rc
}
if wants train; then
    timeout "${TRAIN_TIMEOUT:-300}" bash -c "$(declare -f train_runs); py='$py' results='$results' train_runs" \
        2>&1 | tee "$results/train_cuda.log"
    train_rc=${PIPESTATUS[0]}
fi

# fairseq on the GPU: the toy corpus, 100 updates of a small transformer with the dynamic loss
# (no --cpu), then fairseq-generate on the test set.
fairseq_run() {
    local work bin
    work="$(mktemp -d)"
    bin="$(dirname "$py")"
    export PATH="$bin:$PATH" WORK="$work" VENV_BIN="$bin"
    bash recipes/toy/prepare.sh || return 1
    fairseq-train "$work/data-bin" --user-dir fairseq_dynloss --task translation \
        --arch transformer --share-all-embeddings --encoder-layers 2 --decoder-layers 2 \
        --encoder-embed-dim 64 --decoder-embed-dim 64 --encoder-ffn-embed-dim 256 \
        --decoder-ffn-embed-dim 256 --encoder-attention-heads 4 --decoder-attention-heads 4 \
        --optimizer adam --lr 0.003 --lr-scheduler inverse_sqrt --warmup-updates 50 \
        --max-tokens 2000 --max-update 100 --save-dir "$work/ckpt" --no-epoch-checkpoints \
        --best-checkpoint-metric nll_loss --criterion dynamic_loss --phi-parametrisation bucketed \
        --log-format simple --log-interval 20 || return 1
    fairseq-generate "$work/data-bin" --user-dir fairseq_dynloss --path "$work/ckpt/checkpoint_best.pt" \
        --gen-subset test --beam 5 --post-process sentencepiece --required-batch-size-multiple 1 \
        > "$work/generate.txt" || return 1
    tail -n 2 "$work/generate.txt"
    rm -rf "$work"
}
if wants fairseq; then
    timeout "${FAIRSEQ_TIMEOUT:-300}" bash -c "$(declare -f fairseq_run); py='$py' fairseq_run" \
        2>&1 | grep -v '^DEBUG' | tee "$results/fairseq_cuda.log"
    fairseq_rc=${PIPESTATUS[0]}
fi
set -e

said() { [[ $1 == 124 ]] && echo ' (timed out)'; }
{
    echo "tests (DYNLOSS_TEST_DEVICE=cuda pytest tests/hypergrad): exit $tests_rc$(said "$tests_rc")"
    echo "benchmark (bench_hypergrad.py --device cuda): exit $bench_rc$(said "$bench_rc")"
    echo "teacher step (gpu_teacher_step.py --device cuda): exit $teacher_rc$(said "$teacher_rc")"
    echo "dynloss-train on CUDA (digits LeNet auto/cuda, MNIST-1D CNN, each resumed): exit $train_rc$(said "$train_rc")"
    echo "fairseq dynamic_loss on CUDA (toy corpus, 100 updates, generate): exit $fairseq_rc$(said "$fairseq_rc")"
} | tee "$results/summary.txt"
for rc in "$tests_rc" "$bench_rc" "$teacher_rc" "$train_rc" "$fairseq_rc"; do
    [[ $rc == 0 || $rc == skipped ]] || status=1
done
exit $status
