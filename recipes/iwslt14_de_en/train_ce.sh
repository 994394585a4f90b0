#!/usr/bin/env bash
# The cross-entropy student (the paper's "Cross Entropy" column) for STUDENT=transformer|lstm1|lstm2:
#   STUDENT=lstm2 bash train_ce.sh [extra fairseq-train args]   ->  $WORK/checkpoints/lstm2_ce/
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
fairseq_train "${STUDENT}_ce" --task translation "${STUDENT_ARGS[@]}" \
    --criterion label_smoothed_cross_entropy --label-smoothing "$LABEL_SMOOTHING" "$@"
