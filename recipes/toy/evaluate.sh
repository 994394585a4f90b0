#!/usr/bin/env bash
# Translate the toy test set with a trained model and score it with sacrebleu:
#   evaluate.sh NAME   ->  $WORK/results/NAME.hyp (detokenised) and NAME.bleu.json
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
NAME="$1"
CKPT="$WORK/checkpoints/$NAME/checkpoint_best.pt"
[[ -f "$CKPT" ]] || { echo "evaluate.sh: no checkpoint $CKPT; train $NAME first" >&2; exit 2; }
mkdir -p "$WORK/results"
GEN="$WORK/results/$NAME.generate.txt"
fairseq-generate "$DATA_BIN" --user-dir "$USER_DIR" --task translation --cpu \
    --path "$CKPT" --gen-subset test --beam 5 --batch-size 128 --required-batch-size-multiple 1 \
    --post-process sentencepiece > "$GEN" 2> "$WORK/results/$NAME.generate.log" \
    || { tail -n 20 "$WORK/results/$NAME.generate.log" >&2; exit 1; }
# "D-<id>\t<score>\t<detokenised hypothesis>" lines, back in corpus order.
grep -P "^D-\d+\t" "$GEN" | sed 's/^D-//' | sort -n -k1,1 | cut -f3 > "$WORK/results/$NAME.hyp"
N_HYP=$(wc -l < "$WORK/results/$NAME.hyp"); N_REF=$(wc -l < "$WORK/raw/test.tgt")
[[ "$N_HYP" == "$N_REF" ]] || { echo "evaluate.sh: $N_HYP hypotheses for $N_REF references" >&2; exit 1; }
sacrebleu "$WORK/raw/test.tgt" -i "$WORK/results/$NAME.hyp" -m bleu -b -w 2 > /dev/null  # fail early
sacrebleu "$WORK/raw/test.tgt" -i "$WORK/results/$NAME.hyp" -m bleu --format json > "$WORK/results/$NAME.bleu.json"
python -c "import json,sys; d=json.load(open(sys.argv[1])); print(f'[evaluate] {sys.argv[2]}: BLEU {d[\"score\"]:.2f}  ({d[\"signature\"]})')" \
    "$WORK/results/$NAME.bleu.json" "$NAME"
