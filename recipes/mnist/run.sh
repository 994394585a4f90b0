#!/usr/bin/env bash
# MNIST, L2T-DLF Table 1 setting: MLP and LeNet with cross-entropy, label smoothing,
# L-Softmax and the (teacher-free) dynamic loss. Downloads the IDX files on first use.
set -euo pipefail
TRAIN=${TRAIN:-dynloss-train}
for model in mlp lenet; do
  for loss in ce label_smoothing lsoftmax dynamic; do
    form=(); [ "$loss" = dynamic ] && form=(loss.form=paper)  # the paper's form of the loss
    $TRAIN task=mnist task.download=true model="$model" loss="$loss" "${form[@]}" progress=false "$@"
  done
done
