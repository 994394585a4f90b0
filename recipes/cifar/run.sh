#!/usr/bin/env bash
# CIFAR-10/100, L2T-DLF Table 2 and ALA Table 1 settings (He et al. 2016 schedule: SGD 0.1,
# momentum 0.9, weight decay 5e-4 (1e-4 in He et al.), lr / 10 at 50% and 75% of 164 epochs).
set -euo pipefail
TRAIN=${TRAIN:-dynloss-train}
TASKS=${TASKS:-"cifar10 cifar100"}
MODELS=${MODELS:-"resnet8 resnet20 resnet32"}
LOSSES=${LOSSES:-"ce label_smoothing lsoftmax self_paced dynamic"}
for task in $TASKS; do
  for model in $MODELS; do
    for loss in $LOSSES; do
      $TRAIN task="$task" task.download=true model="$model" loss="$loss" progress=false "$@"
    done
  done
done
# Wide ResNet and DenseNet-BC (CIFAR-10 only in the papers), e.g.:
#   MODELS="wrn28_10 densenet_bc100" TASKS=cifar10 bash recipes/cifar/run.sh model.dropout=0.3
