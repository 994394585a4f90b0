#!/usr/bin/env bash
# The toy study behind `make demo`: prepare -> train (LSTM and Transformer; cross-entropy and
# dynamic_loss) -> fairseq-generate -> sacrebleu -> results table ($WORK/results.md).
# About 6-8 minutes on 2 CPU cores. Finished steps are skipped on a re-run (delete $WORK to redo).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/common.sh"
TRANSFORMER_UPDATES="${TRANSFORMER_UPDATES:-600}"
LSTM_UPDATES="${LSTM_UPDATES:-1000}"

bash "$HERE/prepare.sh"

# name | arch | criterion | updates | extra fairseq-train args
RUNS=(
    "transformer_ce|transformer|ce|$TRANSFORMER_UPDATES|"
    "transformer_dynamic|transformer|dynamic_loss|$TRANSFORMER_UPDATES|"
    "transformer_dynamic_s1|transformer|dynamic_loss|$TRANSFORMER_UPDATES|--phi-scale 1"
    "lstm_ce|lstm|ce|$LSTM_UPDATES|"
    "lstm_dynamic|lstm|dynamic_loss|$LSTM_UPDATES|"
)
NAMES=()
for run in "${RUNS[@]}"; do
    IFS='|' read -r name arch criterion updates extra <<< "$run"
    NAMES+=("$name")
    if [[ -f "$WORK/results/$name.bleu.json" ]]; then
        echo "[run_all] $name already scored; skipping"
        continue
    fi
    # shellcheck disable=SC2086  # $extra is a list of words
    MAX_UPDATE="$updates" bash "$HERE/train.sh" "$name" "$arch" "$criterion" $extra
    bash "$HERE/evaluate.sh" "$name"
done

python "$REPO/scripts/toy_results_table.py" --work "$WORK" "${NAMES[@]}" | tee "$WORK/results.md"
