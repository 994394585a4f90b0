#!/usr/bin/env bash
# Offline demo of the generic trainer: MLP and LeNet on scikit-learn's 8x8 digits with every
# classification loss (a few seconds per run on one CPU core). Results: outputs/digits-*/.
set -euo pipefail
TRAIN=${TRAIN:-dynloss-train}
SEED=${SEED:-1}
for model in mlp lenet; do
  for loss in ce label_smoothing lsoftmax self_paced dynamic; do
    $TRAIN task=digits model="$model" loss="$loss" seed="$SEED" progress=false overwrite=true "$@"
  done
done
python - "$SEED" <<'PY'
import csv, glob, sys
seed = sys.argv[1]
print(f"{'run':40s} {'test error % (last epoch)':>26s}")
for path in sorted(glob.glob(f"outputs/digits-*-seed{seed}/metrics.csv")):
    rows = list(csv.DictReader(open(path)))
    print(f"{path.split('/')[1]:40s} {float(rows[-1]['test_error']):26.2f}")
PY
