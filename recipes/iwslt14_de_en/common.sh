# Shared settings of the IWSLT'14 De-En recipes (sourced, not run).
#
# Every setting is an environment variable with a paper-scale default; TOY=1 swaps the defaults
# for a CPU run of a few minutes on the synthetic toy corpus (same scripts, tiny shapes).
# STUDENT picks the student of the paper's Table 3: transformer | lstm1 | lstm2.
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
SCRIPT="$(basename "$0" .sh)"

die() {
    echo "$SCRIPT: $*" >&2
    exit 1
}

TOY="${TOY:-0}"
[[ "$TOY" == 0 || "$TOY" == 1 ]] || die "TOY='$TOY'; expected 0 or 1"

# default NAME PAPER TOY: keep $NAME if it is set (even to ""), else the paper-scale / toy default.
default() {
    [[ -n "${!1+x}" ]] && return 0
    if [[ "$TOY" == 1 ]]; then printf -v "$1" '%s' "$3"; else printf -v "$1" '%s' "$2"; fi
}

default WORK "$REPO/work/iwslt14_de_en" "$REPO/work/iwslt14_toy"
VENV_BIN="${VENV_BIN:-$REPO/.venv/bin}"
export PATH="$VENV_BIN:$PATH"
USER_DIR="$REPO/fairseq_dynloss"
DATA_BIN="$WORK/data-bin"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"

# ---- data (prepare.sh) -------------------------------------------------------------------------
# The mirror fairseq's examples/translation/prepare-iwslt14.sh uses (wit3.fbk.eu is gone).
IWSLT14_URL="${IWSLT14_URL:-http://dl.fbaipublicfiles.com/fairseq/data/iwslt14/de-en.tgz}"
IWSLT14_MD5="${IWSLT14_MD5:-}"           # checked when set
RAW_DIR="${RAW_DIR:-}"                   # use {train,valid,test}.{RAW_SRC,RAW_TGT} text instead
RAW_SRC="${RAW_SRC:-de}"
RAW_TGT="${RAW_TGT:-en}"
LOWERCASE="${LOWERCASE:-1}"              # as fairseq's IWSLT'14 recipe (download only)
CLEAN_MAX_LEN="${CLEAN_MAX_LEN:-175}"    # clean-corpus-n: 1..175 words, length ratio <= 1.5
CLEAN_RATIO="${CLEAN_RATIO:-1.5}"
default SPM_VOCAB 10000 300              # joint sentencepiece vocabulary
SPM_TYPE="${SPM_TYPE:-bpe}"
default PREPROCESS_WORKERS 4 1
TOY_CORPUS="${TOY_CORPUS:-400 40 40}"    # TOY=1 without RAW_DIR: train / valid / test pairs

# ---- students (paper Table 3: LSTM-1, LSTM-2, Transformer) ---------------------------------------
STUDENT="${STUDENT:-transformer}"
TOY_TRANSFORMER=(--encoder-layers 1 --decoder-layers 1 --encoder-embed-dim 32 --decoder-embed-dim 32
    --encoder-ffn-embed-dim 64 --decoder-ffn-embed-dim 64 --encoder-attention-heads 2
    --decoder-attention-heads 2)
TOY_LSTM=(--encoder-embed-dim 32 --decoder-embed-dim 32 --decoder-out-embed-dim 32)
case "$STUDENT" in
    transformer)
        ARCH_ARGS=(--arch transformer_iwslt_de_en --share-all-embeddings)
        [[ "$TOY" == 1 ]] && ARCH_ARGS+=("${TOY_TRANSFORMER[@]}")
        default MAX_UPDATE 60000 60; default LR 5e-4 3e-3; default DROPOUT 0.3 0.1
        default WEIGHT_DECAY 1e-4 0; default CLIP_NORM 0 0 ;;
    lstm1 | lstm2)
        layers="${STUDENT#lstm}"
        ARCH_ARGS=(--arch lstm_wiseman_iwslt_de_en --encoder-layers "$layers" --decoder-layers "$layers")
        [[ "$TOY" == 1 ]] && ARCH_ARGS+=("${TOY_LSTM[@]}")
        default MAX_UPDATE 50000 60; default LR 1e-3 3e-3; default DROPOUT 0.2 0.1
        default WEIGHT_DECAY 0 0; default CLIP_NORM 1.0 1.0 ;;
    *) die "STUDENT='$STUDENT'; expected transformer, lstm1 or lstm2" ;;
esac
default SEED 1 1
default MAX_TOKENS 4096 1000
default WARMUP 4000 10
LABEL_SMOOTHING="${LABEL_SMOOTHING:-0}"  # the paper's baseline is plain cross entropy
default LOG_INTERVAL 100 10
default NUM_WORKERS 1 0                  # 0: no loader thread alive at exit (CPU smoke runs)
default DATA_BUFFER_SIZE 10 0
FP16="${FP16:-0}"                        # students only (the teacher's unroll stays fp32)
default CPU 0 1
DEVICE_ARGS=()
[[ "$CPU" == 1 ]] && DEVICE_ARGS+=(--cpu)
STUDENT_ARGS=("${ARCH_ARGS[@]}" --dropout "$DROPOUT"
    --optimizer adam --adam-betas '(0.9,0.98)' --lr "$LR" --lr-scheduler inverse_sqrt
    --warmup-updates "$WARMUP" --weight-decay "$WEIGHT_DECAY" --clip-norm "$CLIP_NORM"
    --max-tokens "$MAX_TOKENS" --max-update "$MAX_UPDATE"
    # CE and dynamic-loss students pick their best checkpoint by the same number.
    --best-checkpoint-metric nll_loss)
[[ "$FP16" == 1 ]] && STUDENT_ARGS+=(--fp16)

# ---- the loss and the teacher (train_teacher.sh, train_student.sh) --------------------------------
PHI_PARAMETRISATION="${PHI_PARAMETRISATION:-bucketed}"
PHI_BUCKETS="${PHI_BUCKETS:-8}"
PHI_SCALE="${PHI_SCALE:-}"               # empty: the criterion's default 1/sqrt(|V|)
NLL_WEIGHT="${NLL_WEIGHT:-0}"
PHI_ARGS=(--phi-parametrisation "$PHI_PARAMETRISATION" --phi-buckets "$PHI_BUCKETS" --nll-weight "$NLL_WEIGHT")
[[ -n "$PHI_SCALE" ]] && PHI_ARGS+=(--phi-scale "$PHI_SCALE")
TEACHER_MODE="${TEACHER_MODE:-episodic}"
default TEACHER_STEPS 1000 3             # episodic: teacher updates (x UNROLL fairseq updates)
default UNROLL 5 2                       # T, student steps unrolled per teacher step
INNER_OPTIMIZER="${INNER_OPTIMIZER:-adam}"
default INNER_LR 1e-3 0.01
default TEACHER_LR 1e-3 0.005
default TEACHER_DEV_BATCHES 4 1
default TEACHER_DEV_MAX_SENTENCES 64 16
TEACHER_MAX_TOKENS="${TEACHER_MAX_TOKENS:-$MAX_TOKENS}"
default TEACHER_INTERVAL 200 4           # online mode: updates between teacher steps
HYPERGRAD_CHECKPOINT="${HYPERGRAD_CHECKPOINT:-0}"
HYPERGRAD_TRUNCATE="${HYPERGRAD_TRUNCATE:-0}"
TEACHER_PATH="${TEACHER_PATH:-$WORK/checkpoints/${STUDENT}_teacher/teacher.pt}"

# ---- evaluation (evaluate.sh) ----------------------------------------------------------------------
BEAM="${BEAM:-5}"
LENPEN="${LENPEN:-1}"
GEN_BATCH_SIZE="${GEN_BATCH_SIZE:-128}"
GEN_SUBSET="${GEN_SUBSET:-test}"
CHECKPOINT="${CHECKPOINT:-checkpoint_best.pt}"

# fairseq_train NAME ARGS...: fairseq-train into $WORK/checkpoints/NAME (log appended to
# $WORK/logs/NAME.train.log). Skipped once NAME/.done exists; an interrupted run resumes from
# its checkpoint_last.pt. Delete the folder to redo a run with other settings.
fairseq_train() {
    local name="$1"
    shift
    local save="$WORK/checkpoints/$name" log="$WORK/logs/$name.train.log"
    if [[ -f "$save/.done" ]]; then
        echo "[$SCRIPT] $name: finished before ($save); skipping"
        return 0
    fi
    [[ -f "$DATA_BIN/.done" ]] || die "no data in $DATA_BIN; run prepare.sh first"
    mkdir -p "$WORK/logs"
    echo "[$SCRIPT] $name: STUDENT=$STUDENT -> $save (log: $log)"
    if ! fairseq-train "$DATA_BIN" --user-dir "$USER_DIR" --source-lang de --target-lang en \
        --seed "$SEED" "${DEVICE_ARGS[@]}" --save-dir "$save" --no-epoch-checkpoints \
        --num-workers "$NUM_WORKERS" --data-buffer-size "$DATA_BUFFER_SIZE" \
        --log-format simple --log-interval "$LOG_INTERVAL" "$@" >> "$log" 2>&1; then
        tail -n 30 "$log" >&2
        die "fairseq-train failed for $name (log: $log)"
    fi
    touch "$save/.done"
    { grep -E "\| valid on" "$log" || true; } | tail -n 1 | sed -E "s/.*(valid on.*\| ppl [0-9.]+(e[+-]?[0-9]+)?).*/[$SCRIPT] $name: \1/"
    { grep -E "done training" "$log" || true; } | tail -n 1 | sed -E "s/.*done training/[$SCRIPT] $name: done training/"
}
