# Shared settings of the toy recipes (sourced, not run).
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WORK="${WORK:-$REPO/work/toy}"
VENV_BIN="${VENV_BIN:-$REPO/.venv/bin}"
USER_DIR="$REPO/fairseq_dynloss"
DATA_BIN="$WORK/data-bin"
export PATH="$VENV_BIN:$PATH"
# Two cores: one intra-op thread per core. The README's toy numbers were made with 2; results
# change with the thread count (floating-point sums), and on a busy machine 2 threads per process
# can run many times slower than 1 -- then set OMP_NUM_THREADS=1 (other numbers, said in the log).
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
if [[ -z "${DYNLOSS_TOY_THREADS_SAID:-}" ]]; then
    echo "[toy] OMP_NUM_THREADS=$OMP_NUM_THREADS intra-op threads per fairseq process (results depend on it; README)" >&2
    export DYNLOSS_TOY_THREADS_SAID=1
fi

# Model shapes (small enough for 2 CPU cores).
ARCH_ARGS_transformer=(--arch transformer --share-all-embeddings
    --encoder-layers 2 --decoder-layers 2 --encoder-embed-dim 64 --decoder-embed-dim 64
    --encoder-ffn-embed-dim 256 --decoder-ffn-embed-dim 256
    --encoder-attention-heads 4 --decoder-attention-heads 4 --dropout 0.1
    --optimizer adam --adam-betas '(0.9,0.98)' --lr 0.003 --lr-scheduler inverse_sqrt
    --warmup-updates 200 --max-tokens 2000)
ARCH_ARGS_lstm=(--arch lstm
    --encoder-embed-dim 128 --decoder-embed-dim 128 --encoder-hidden-size 128
    --decoder-hidden-size 128 --decoder-out-embed-dim 128 --dropout 0.1
    --optimizer adam --lr 0.003 --lr-scheduler inverse_sqrt --warmup-updates 200
    --max-tokens 2000)
