#!/usr/bin/env bash
# The hypergradient engine on CUDA, in one go: the exactness tests (tests/hypergrad with
# DYNLOSS_TEST_DEVICE=cuda), the benchmark (scripts/bench_hypergrad.py --device cuda) and one
# L2T-DLF teacher step of an IWSLT-size transformer (scripts/gpu_teacher_step.py).
#
# Usage (from anywhere; a CUDA machine with torch, scikit-learn, matplotlib and pytest):
#     scripts/gpu_check.sh [RESULTS_DIR]
# RESULTS_DIR defaults to $OUT when set, else ./gpu_check_results. It receives:
#     env.txt                    python, torch, CUDA, GPU, git revision
#     tests_cuda.log             pytest output (skips listed with their reasons)
#     bench_cuda.md              benchmark tables (markdown), as docs/benchmarks_hypergrad.md
#     hypergrad_memory_cuda.png  peak GPU memory against T
#     teacher_step_cuda.md       one teacher step vs T plain updates, time and peak memory
#     summary.txt                one line per phase with its exit status
# Environment: PYTHON (default .venv/bin/python if present, else python3); BENCH_ARGS (default
# "--models mlp lenet --repeats 3 --memory-steps 10 50 200", sized to finish in a few minutes);
# TEST_TIMEOUT / BENCH_TIMEOUT in seconds (default 300 / 420). fairseq, higher and torchopt are
# optional: without them the fairseq-student tests are skipped and the benchmark leaves out the
# higher / torchopt rows (each says so).
# Exit status: 0 when both phases pass, 1 when one fails, 2 when there is no CUDA device.
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
# Each phase runs even if the other fails; pipefail keeps the phase's own exit status.
set +e
DYNLOSS_TEST_DEVICE=cuda timeout "${TEST_TIMEOUT:-300}" "$py" -m pytest -q -rs -p no:cacheprovider tests/hypergrad \
    2>&1 | tee "$results/tests_cuda.log"
tests_rc=${PIPESTATUS[0]}
read -r -a bench_args <<<"${BENCH_ARGS:---models mlp lenet --repeats 3 --memory-steps 10 50 200}"
timeout "${BENCH_TIMEOUT:-420}" "$py" scripts/bench_hypergrad.py --device cuda "${bench_args[@]}" \
    --plot "$results/hypergrad_memory_cuda.png" 2>&1 | tee "$results/bench_cuda.md"
bench_rc=${PIPESTATUS[0]}
# Issue 6: one L2T-DLF teacher step of an IWSLT-size transformer on synthetic batches.
timeout "${TEACHER_TIMEOUT:-300}" "$py" scripts/gpu_teacher_step.py --device cuda \
    --out "$results/teacher_step_cuda.md" 2>&1 | grep -v '^INFO\|^DEBUG' | tee "$results/teacher_step_cuda.log"
teacher_rc=${PIPESTATUS[0]}
set -e

{
    echo "tests (DYNLOSS_TEST_DEVICE=cuda pytest tests/hypergrad): exit $tests_rc$([[ $tests_rc == 124 ]] && echo ' (timed out)')"
    echo "benchmark (bench_hypergrad.py --device cuda): exit $bench_rc$([[ $bench_rc == 124 ]] && echo ' (timed out)')"
    echo "teacher step (gpu_teacher_step.py --device cuda): exit $teacher_rc$([[ $teacher_rc == 124 ]] && echo ' (timed out)')"
} | tee "$results/summary.txt"
[[ $tests_rc == 0 && $bench_rc == 0 && $teacher_rc == 0 ]] || status=1
exit $status
