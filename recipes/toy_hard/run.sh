#!/usr/bin/env bash
# The toy_hard baseline: prepare the hard corpus, train the toy transformer with CE for UPDATES
# (default 1200) updates and score it on test with sacrebleu, through the toy recipes' scripts.
#   bash recipes/toy_hard/run.sh                      # -> $WORK/results/transformer_ce.bleu.json
#   NOISE_RATE=0.2 WORK=work/toy_hard_noise20 bash recipes/toy_hard/run.sh
#   SEED=2 NAME=transformer_ce_seed2 bash recipes/toy_hard/run.sh
# Every other toy recipe runs on this corpus the same way: source env.sh, then call it, e.g.
#   (source recipes/toy_hard/env.sh && bash recipes/toy/finetune_seq.sh)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
NAME="${NAME:-transformer_ce}"
bash "$TOY_HARD/prepare.sh"
if [[ -f "$WORK/results/$NAME.bleu.json" ]]; then
    echo "[toy_hard] $NAME already scored; skipping"
    exit 0
fi
MAX_UPDATE="${UPDATES:-1200}" SEED="${SEED:-1}" bash "$TOY/train.sh" "$NAME" transformer ce
bash "$TOY/evaluate.sh" "$NAME"
