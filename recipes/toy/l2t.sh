#!/usr/bin/env bash
# L2T-DLF on the toy corpus: train a teacher (episodic, --task translation_l2t), then train
# students taught by it (--phi-source teacher) and cross-entropy students over several seeds,
# score all with sacrebleu and print mean +- std. Run after prepare.sh (run_all.sh does it).
#   SEEDS="1 2 3"  TEACHER_STEPS=60  UNROLL=3  STUDENT_UPDATES=600
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/common.sh"
SEEDS="${SEEDS:-1 2 3}"
TEACHER_STEPS="${TEACHER_STEPS:-60}"
UNROLL="${UNROLL:-3}"
STUDENT_UPDATES="${STUDENT_UPDATES:-600}"
PHI_ARGS=(--phi-parametrisation bucketed --phi-buckets 8)
bash "$HERE/prepare.sh"

TEACHER="$WORK/checkpoints/l2t_teacher/teacher.pt"
if [[ -f "$TEACHER" && -f "$WORK/checkpoints/l2t_teacher/.done" ]]; then
    echo "[l2t] teacher exists: $TEACHER"
else
    # The teacher sees the progress of a $STUDENT_UPDATES-update student (--teacher-horizon).
    MAX_UPDATE=$(( TEACHER_STEPS * UNROLL )) bash "$HERE/train.sh" l2t_teacher transformer dynamic_loss \
        --task translation_l2t "${PHI_ARGS[@]}" --teacher-mode episodic --unroll-steps "$UNROLL" \
        --inner-optimizer adam --inner-lr 0.01 --teacher-lr 0.005 --teacher-horizon "$STUDENT_UPDATES" \
        --teacher-dev-batches 2 --teacher-dev-max-sentences 32 --disable-validation --max-tokens 1000
    touch "$WORK/checkpoints/l2t_teacher/.done"
    python - "$WORK/checkpoints/l2t_teacher/teacher_log.csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
obj = [float(r["dev_objective"]) for r in rows]
k = max(1, len(obj) // 5)
print(f"[l2t] teacher dev objective (expected token accuracy after the unroll): first {k} steps "
      f"{sum(obj[:k]) / k:.4f} -> last {k} steps {sum(obj[-k:]) / k:.4f} ({len(obj)} steps)")
PY
fi

NAMES=()
for seed in $SEEDS; do
    for kind in ce l2t; do
        name="l2t_study_${kind}_seed$seed"
        NAMES+=("$name")
        [[ -f "$WORK/results/$name.bleu.json" ]] && { echo "[l2t] $name already scored"; continue; }
        if [[ "$kind" == ce ]]; then
            SEED=$seed MAX_UPDATE=$STUDENT_UPDATES bash "$HERE/train.sh" "$name" transformer ce
        else
            SEED=$seed MAX_UPDATE=$STUDENT_UPDATES bash "$HERE/train.sh" "$name" transformer dynamic_loss \
                "${PHI_ARGS[@]}" --phi-source teacher --teacher-path "$TEACHER"
        fi
        bash "$HERE/evaluate.sh" "$name"
    done
done
python "$REPO/scripts/toy_results_table.py" --work "$WORK" --group-seeds "${NAMES[@]}" | tee "$WORK/l2t_results.md"
