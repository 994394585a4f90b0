#!/usr/bin/env bash
# CIFAR-10 ALA, multi-network (ALA Table 1 "ALA (multi-network)"): CHILDREN child models, one
# process (and one GPU) each under torchrun, share one controller and one replay memory; child r
# trains from seed + r into <run dir>/child<r>/. Settings as recipes/cifar/ala_single.sh.
#   bash recipes/cifar/ala_multi.sh                        # 4 children, ResNet-32 / WRN / DenseNet
#   CHILDREN=2 MODELS=resnet32 SEEDS=1 bash recipes/cifar/ala_multi.sh task.epochs=10
set -euo pipefail
TORCHRUN=${TORCHRUN:-torchrun}
CHILDREN=${CHILDREN:-4}
MODELS=${MODELS:-"resnet32 wrn28_10 densenet_bc100"}
SEEDS=${SEEDS:-"1 11 21"}          # each run trains CHILDREN children (seeds seed .. seed+CHILDREN-1)
REWARD=${REWARD:-error}
WINDOW=${WINDOW:-50}
METRIC_EVERY=${METRIC_EVERY:-25}
VAL_SUBSET=${VAL_SUBSET:-1000}
NLL_WEIGHT=${NLL_WEIGHT:-0.5}
for model in $MODELS; do
  for seed in $SEEDS; do
    $TORCHRUN --standalone --nproc_per_node "$CHILDREN" -m fairseq_dynloss.trainer \
      task=cifar10 task.download=true model="$model" loss=dynamic loss.form=paper loss.parametrisation=full \
      loss.nll_weight="$NLL_WEIGHT" controller=ala controller.multi_network=true \
      controller.reward_metric="$REWARD" controller.window="$WINDOW" \
      controller.metric_every="$METRIC_EVERY" controller.val_subset="$VAL_SUBSET" seed="$seed" \
      progress=false hydra.run.dir="outputs/cifar10-$model-ala-multi-$REWARD-seed$seed" "$@"
  done
done
