#!/usr/bin/env bash
# Toy corpus -> sentencepiece -> fairseq-preprocess. Idempotent: skips if $WORK/data-bin is done.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
if [[ -f "$DATA_BIN/.done" ]]; then
    echo "[prepare] $DATA_BIN exists; skipping"
    exit 0
fi
python "$REPO/scripts/make_toy_corpus.py" --out "$WORK/raw" --seed "${CORPUS_SEED:-1}" \
    --train 3000 --valid 300 --test 300
python "$REPO/scripts/spm_prepare.py" --raw "$WORK/raw" --out "$WORK/spm" --vocab-size 500
rm -rf "$DATA_BIN"
fairseq-preprocess --source-lang src --target-lang tgt --joined-dictionary --workers 1 \
    --trainpref "$WORK/spm/train" --validpref "$WORK/spm/valid" --testpref "$WORK/spm/test" \
    --destdir "$DATA_BIN" > "$WORK/preprocess.log" 2>&1 \
    || { cat "$WORK/preprocess.log" >&2; exit 1; }
touch "$DATA_BIN/.done"
echo "[prepare] wrote $DATA_BIN ($(wc -l < "$DATA_BIN/dict.tgt.txt") dictionary entries)"
