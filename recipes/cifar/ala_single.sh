#!/usr/bin/env bash
# CIFAR-10 ALA, single network (ALA Table 1 "ALA (single-network)", Table 2 with REWARD=aucpr):
# the dynamic loss -sigmoid(Phi[y] . log p) with a full 10 x 10 Phi; every WINDOW updates the
# controller reads the validation confusion matrix and moves the 90 off-diagonal entries. He et al.
# 2016 schedule (SGD 0.1, momentum 0.9, lr / 10 at 50% and 75% of 164 epochs), SEEDS runs each.
# Cost knobs (scripts/bench_ala.py): the reward metric is measured every METRIC_EVERY updates on
# VAL_SUBSET validation images -- one forward of them each time.
#   bash recipes/cifar/ala_single.sh                       # ResNet-32, WRN-28-10, DenseNet-BC, 10 seeds
#   MODELS=resnet32 SEEDS="1 2" bash recipes/cifar/ala_single.sh task.epochs=10
set -euo pipefail
TRAIN=${TRAIN:-dynloss-train}
MODELS=${MODELS:-"resnet32 wrn28_10 densenet_bc100"}
SEEDS=${SEEDS:-"1 2 3 4 5 6 7 8 9 10"}
REWARD=${REWARD:-error}            # error (Table 1) or aucpr (Table 2)
WINDOW=${WINDOW:-50}
METRIC_EVERY=${METRIC_EVERY:-25}
VAL_SUBSET=${VAL_SUBSET:-1000}
NLL_WEIGHT=${NLL_WEIGHT:-0.5}      # 0: the paper's plain dynamic loss (saturates on digits; see README)
for model in $MODELS; do
  for seed in $SEEDS; do
    $TRAIN task=cifar10 task.download=true model="$model" loss=dynamic loss.form=paper loss.parametrisation=full \
      loss.nll_weight="$NLL_WEIGHT" controller=ala controller.reward_metric="$REWARD" \
      controller.window="$WINDOW" controller.metric_every="$METRIC_EVERY" \
      controller.val_subset="$VAL_SUBSET" seed="$seed" progress=false \
      hydra.run.dir="outputs/cifar10-$model-ala-$REWARD-seed$seed" "$@"
  done
done
