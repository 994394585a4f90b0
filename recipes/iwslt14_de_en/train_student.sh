#!/usr/bin/env bash
# The student taught by the L2T-DLF teacher (the paper's "L2T-DLF" column): dynamic loss with
# Phi_t = teacher(student state) every update (--phi-source teacher).
#   STUDENT=transformer bash train_student.sh [extra fairseq-train args]
#     ->  $WORK/checkpoints/transformer_l2t/   (teacher: $TEACHER_PATH, from train_teacher.sh)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
[[ -f "$TEACHER_PATH" ]] || die "no teacher file '$TEACHER_PATH'; run train_teacher.sh first or set TEACHER_PATH"
fairseq_train "${STUDENT}_l2t" --task translation "${STUDENT_ARGS[@]}" \
    --criterion dynamic_loss "${PHI_ARGS[@]}" --phi-source teacher --teacher-path "$TEACHER_PATH" "$@"
