#!/usr/bin/env bash
# Translate the toy test set with a trained model and score it with sacrebleu:
#   evaluate.sh NAME   ->  $WORK/results/NAME.hyp (detokenised) and NAME.bleu.json
#   SUBSET=valid evaluate.sh NAME  ->  NAME.valid.hyp and NAME.valid.bleu.json: the validation
#   set, for choices made on validation (the test files are left alone)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
NAME="$1"
SUBSET="${SUBSET:-test}"
case "$SUBSET" in
    test) OUT="$WORK/results/$NAME" ;;
    valid) OUT="$WORK/results/$NAME.valid" ;;
    *) echo "evaluate.sh: SUBSET='$SUBSET'; expected test or valid" >&2; exit 2 ;;
esac
CKPT="$WORK/checkpoints/$NAME/checkpoint_best.pt"
[[ -f "$CKPT" ]] || { echo "evaluate.sh: no checkpoint $CKPT; train $NAME first" >&2; exit 2; }
mkdir -p "$WORK/results"
GEN="$OUT.generate.txt"
fairseq-generate "$DATA_BIN" --user-dir "$USER_DIR" --task translation --cpu \
    --path "$CKPT" --gen-subset "$SUBSET" --beam 5 --batch-size 128 --required-batch-size-multiple 1 \
    --post-process sentencepiece > "$GEN" 2> "$OUT.generate.log" \
    || { tail -n 20 "$OUT.generate.log" >&2; exit 1; }
# "D-<id>\t<score>\t<detokenised hypothesis>" lines, back in corpus order.
grep -P "^D-\d+\t" "$GEN" | sed 's/^D-//' | sort -n -k1,1 | cut -f3 > "$OUT.hyp"
N_HYP=$(wc -l < "$OUT.hyp"); N_REF=$(wc -l < "$WORK/raw/$SUBSET.tgt")
[[ "$N_HYP" == "$N_REF" ]] || { echo "evaluate.sh: $N_HYP hypotheses for $N_REF references" >&2; exit 1; }
sacrebleu "$WORK/raw/$SUBSET.tgt" -i "$OUT.hyp" -m bleu -b -w 2 > /dev/null  # fail early
sacrebleu "$WORK/raw/$SUBSET.tgt" -i "$OUT.hyp" -m bleu --format json > "$OUT.bleu.json"
python -c "import json,sys; d=json.load(open(sys.argv[1])); print(f'[evaluate] {sys.argv[2]} ({sys.argv[3]}): BLEU {d[\"score\"]:.2f}  ({d[\"signature\"]})')" \
    "$OUT.bleu.json" "$NAME" "$SUBSET"
