#!/usr/bin/env bash
# The whole L2T-DLF IWSLT'14 De-En study: prepare -> for each student: cross-entropy student,
# teacher, taught student, both scored -> results table ($WORK/results.md).
#   STUDENTS="lstm1 lstm2 transformer" bash run_all.sh     (default: all three, the paper's Table 3)
#   TOY=1 STUDENTS=transformer bash run_all.sh             (CPU smoke run, about a minute)
# Finished steps are skipped on a re-run.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/common.sh"
STUDENTS="${STUDENTS:-lstm1 lstm2 transformer}"
bash "$HERE/prepare.sh"
NAMES=()
for student in $STUDENTS; do
    export STUDENT="$student"
    bash "$HERE/train_ce.sh"
    bash "$HERE/evaluate.sh" ce
    bash "$HERE/train_teacher.sh"
    bash "$HERE/train_student.sh"
    bash "$HERE/evaluate.sh" l2t
    NAMES+=("${student}_ce" "${student}_l2t")
done
python "$REPO/scripts/toy_results_table.py" --work "$WORK" "${NAMES[@]}" | tee "$WORK/results.md"
