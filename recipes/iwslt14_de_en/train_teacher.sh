#!/usr/bin/env bash
# Train the L2T-DLF teacher of STUDENT (--task translation_l2t; docs/design.md §3.2):
#   STUDENT=lstm1 bash train_teacher.sh [extra fairseq-train args]
#     ->  $WORK/checkpoints/lstm1_teacher/teacher.pt and teacher_log.csv
# episodic (default, the paper): TEACHER_STEPS teacher steps, each unrolling a freshly initialised
# student UNROLL updates (--max-update = TEACHER_STEPS x UNROLL); the real student never trains.
# online: the student trains MAX_UPDATE updates; every TEACHER_INTERVAL a teacher step unrolls
# a copy of it. The teacher reads the progress of a MAX_UPDATE-update student (--teacher-horizon),
# the length of the students train_student.sh trains with it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
case "$TEACHER_MODE" in
    episodic) MODE_ARGS=(--max-update "$(( TEACHER_STEPS * UNROLL ))") ;;
    online) MODE_ARGS=(--max-update "$MAX_UPDATE" --teacher-interval "$TEACHER_INTERVAL") ;;
    *) die "TEACHER_MODE='$TEACHER_MODE'; expected episodic or online" ;;
esac
# Later options win: MODE_ARGS and --max-tokens override those in STUDENT_ARGS.
fairseq_train "${STUDENT}_teacher" --task translation_l2t "${STUDENT_ARGS[@]}" "${MODE_ARGS[@]}" \
    --max-tokens "$TEACHER_MAX_TOKENS" --criterion dynamic_loss "${PHI_ARGS[@]}" \
    --teacher-mode "$TEACHER_MODE" --unroll-steps "$UNROLL" --teacher-horizon "$MAX_UPDATE" \
    --inner-optimizer "$INNER_OPTIMIZER" --inner-lr "$INNER_LR" --teacher-lr "$TEACHER_LR" \
    --teacher-dev-batches "$TEACHER_DEV_BATCHES" --teacher-dev-max-sentences "$TEACHER_DEV_MAX_SENTENCES" \
    --hypergrad-checkpoint "$HYPERGRAD_CHECKPOINT" --hypergrad-truncate "$HYPERGRAD_TRUNCATE" \
    --disable-validation "$@"
python - "$WORK/checkpoints/${STUDENT}_teacher/teacher_log.csv" "$SCRIPT" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
obj = [float(r["dev_objective"]) for r in rows]
k = max(1, len(obj) // 5)
print(f"[{sys.argv[2]}] teacher dev objective (expected token accuracy after the unroll): "
      f"first {k} steps {sum(obj[:k]) / k:.4f} -> last {k} steps {sum(obj[-k:]) / k:.4f} ({len(obj)} steps, "
      f"{sum(r['skipped'] == '1' for r in rows)} skipped)")
PY
