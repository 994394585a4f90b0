#!/usr/bin/env bash
# Train one toy model:  train.sh NAME ARCH CRITERION [extra fairseq-train args...]
#   ARCH: transformer | lstm;  CRITERION: ce | dynamic_loss | any fairseq criterion name.
# Writes $WORK/checkpoints/NAME/ and $WORK/logs/NAME.train.log. checkpoint_best.pt is selected by
# the validation NLL (--best-checkpoint-metric nll_loss): fairseq's default, `loss`, is the
# criterion's objective, whose meaning changes with the criterion, a teacher or ALA (BEST_METRIC=loss
# for a criterion that logs no nll_loss, e.g. reinforce_bleu with --nll-weight 0). Re-running with a finished
# checkpoint_last.pt resumes (and stops at once if --max-update was reached).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
NAME="$1"; ARCH="$2"; CRITERION="$3"; shift 3
MAX_UPDATE="${MAX_UPDATE:-1500}"
case "$ARCH" in
    transformer) ARCH_ARGS=("${ARCH_ARGS_transformer[@]}") ;;
    lstm) ARCH_ARGS=("${ARCH_ARGS_lstm[@]}") ;;
    *) echo "train.sh: unknown ARCH '$ARCH'; expected transformer or lstm" >&2; exit 2 ;;
esac
case "$CRITERION" in
    ce) CRIT_ARGS=(--criterion label_smoothed_cross_entropy --label-smoothing 0.0) ;;
    *) CRIT_ARGS=(--criterion "$CRITERION") ;;
esac
[[ -f "$DATA_BIN/dict.src.txt" ]] || { echo "train.sh: no data in $DATA_BIN; run prepare.sh first" >&2; exit 2; }
mkdir -p "$WORK/logs"
LOG="$WORK/logs/$NAME.train.log"
echo "[train] $NAME: $ARCH, $CRITERION, $MAX_UPDATE updates -> $WORK/checkpoints/$NAME (log: $LOG)"
if ! fairseq-train "$DATA_BIN" --user-dir "$USER_DIR" --task translation --cpu --seed "${SEED:-1}" \
    "${ARCH_ARGS[@]}" "${CRIT_ARGS[@]}" \
    --max-update "$MAX_UPDATE" --save-dir "$WORK/checkpoints/$NAME" --no-epoch-checkpoints \
    --best-checkpoint-metric "${BEST_METRIC:-nll_loss}" \
    --log-format simple --log-interval 100 "$@" > "$LOG" 2>&1; then
    tail -n 20 "$LOG" >&2
    echo "train.sh: fairseq-train failed for $NAME (log: $LOG)" >&2
    exit 1
fi
# Summary lines (absent with --disable-validation: not an error).
{ grep -E "\| valid on" "$LOG" || true; } | tail -n 1 | sed -E 's/.*(valid on.*\| ppl [0-9.]+(e[+-]?[0-9]+)?).*/[train] \1/'
{ grep -E "done training" "$LOG" || true; } | sed -E 's/.*done training/[train] done training/'
