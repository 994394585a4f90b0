#!/usr/bin/env bash
# Toy corpus -> sentencepiece -> fairseq-preprocess. Idempotent: skips if $WORK/data-bin is done.
#   CORPUS_ARGS (default "--train 3000 --valid 300 --test 300"): more make_toy_corpus.py options,
#   e.g. recipes/toy_hard/prepare.sh's "--preset hard ..."; SPM_VOCAB (default 500).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
if [[ -f "$DATA_BIN/.done" ]]; then
    echo "[prepare] $DATA_BIN exists; skipping"
    exit 0
fi
# shellcheck disable=SC2086  # CORPUS_ARGS is a list of words
python "$REPO/scripts/make_toy_corpus.py" --out "$WORK/raw" --seed "${CORPUS_SEED:-1}" \
    ${CORPUS_ARGS:---train 3000 --valid 300 --test 300}
python "$REPO/scripts/spm_prepare.py" --raw "$WORK/raw" --out "$WORK/spm" --vocab-size "${SPM_VOCAB:-500}"
rm -rf "$DATA_BIN"
fairseq-preprocess --source-lang src --target-lang tgt --joined-dictionary --workers 1 \
    --trainpref "$WORK/spm/train" --validpref "$WORK/spm/valid" --testpref "$WORK/spm/test" \
    --destdir "$DATA_BIN" > "$WORK/preprocess.log" 2>&1 \
    || { cat "$WORK/preprocess.log" >&2; exit 1; }
touch "$DATA_BIN/.done"
echo "[prepare] wrote $DATA_BIN ($(wc -l < "$DATA_BIN/dict.tgt.txt") dictionary entries)"
