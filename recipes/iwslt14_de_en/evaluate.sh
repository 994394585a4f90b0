#!/usr/bin/env bash
# Translate the test set with a trained student and score it with sacrebleu (signature printed):
#   STUDENT=lstm1 bash evaluate.sh ce|l2t|RUN_NAME [extra fairseq-generate args]
#     ->  $WORK/results/RUN.hyp (detokenised), RUN.bleu.json (sacrebleu), RUN.generate.txt
# "ce" and "l2t" stand for ${STUDENT}_ce and ${STUDENT}_l2t. Skipped when RUN.bleu.json exists.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
[[ $# -ge 1 ]] || die "usage: evaluate.sh ce|l2t|RUN_NAME [fairseq-generate args]"
case "$1" in
    ce | l2t) NAME="${STUDENT}_$1" ;;
    *) NAME="$1" ;;
esac
shift
RESULTS="$WORK/results"
BLEU_JSON="$RESULTS/$NAME.bleu.json"
REF="$WORK/raw/$GEN_SUBSET.en"
print_score() {
    python -c "import json, sys; d = json.load(open(sys.argv[1])); print(f'[evaluate] {sys.argv[2]}: BLEU {d[\"score\"]:.2f}  ({d[\"signature\"]})')" \
        "$BLEU_JSON" "$NAME"
}
if [[ -f "$BLEU_JSON" ]]; then
    print_score
    exit 0
fi
CKPT="$WORK/checkpoints/$NAME/$CHECKPOINT"
[[ -f "$CKPT" ]] || die "no checkpoint $CKPT; train $NAME first"
[[ -f "$REF" ]] || die "no reference $REF; run prepare.sh first"
mkdir -p "$RESULTS"
GEN="$RESULTS/$NAME.generate.txt"
# --required-batch-size-multiple 1: else fairseq drops the sentences of an incomplete last batch.
fairseq-generate "$DATA_BIN" --user-dir "$USER_DIR" --task translation --source-lang de --target-lang en \
    "${DEVICE_ARGS[@]}" --path "$CKPT" --gen-subset "$GEN_SUBSET" --beam "$BEAM" --lenpen "$LENPEN" \
    --batch-size "$GEN_BATCH_SIZE" --required-batch-size-multiple 1 --num-workers "$NUM_WORKERS" \
    --post-process sentencepiece "$@" > "$GEN" 2> "$RESULTS/$NAME.generate.log" \
    || { tail -n 20 "$RESULTS/$NAME.generate.log" >&2; die "fairseq-generate failed for $NAME"; }
# "D-<id>\t<score>\t<detokenised hypothesis>" lines, back in corpus order.
grep -P "^D-\d+\t" "$GEN" | sed 's/^D-//' | sort -n -k1,1 | cut -f3 > "$RESULTS/$NAME.hyp"
N_HYP=$(wc -l < "$RESULTS/$NAME.hyp")
N_REF=$(wc -l < "$REF")
[[ "$N_HYP" == "$N_REF" ]] || die "$N_HYP hypotheses for $N_REF references in $REF"
sacrebleu "$REF" -i "$RESULTS/$NAME.hyp" -m bleu --format json > "$BLEU_JSON.tmp" \
    || die "sacrebleu failed on $RESULTS/$NAME.hyp"
mv "$BLEU_JSON.tmp" "$BLEU_JSON"
print_score
