#!/usr/bin/env bash
# Stanford Online Products, ALA with a distance mixture (ALA Table 3, "Triplet + ALA" and
# "Margin + ALA (distance mixture)"): the loss uses F(d) = sum_k phi_k f_k(d) over
# f = (d, d^2, log(1 + d), exp(d) - 1), starting from phi = (1, 0, 0, 0) (the plain loss);
# the controller moves phi from the positive / negative distance statistics of VAL_CLASSES
# held-out training classes, rewarded by their recall@1. Pass model.pretrained_path=resnet18.pth
# for ImageNet weights. Multi-network: CHILDREN=4 (torchrun, one GPU per child).
set -euo pipefail
TRAIN=${TRAIN:-dynloss-train}
TORCHRUN=${TORCHRUN:-torchrun}
CHILDREN=${CHILDREN:-1}
LOSSES=${LOSSES:-"triplet_mixture margin_mixture"}
VAL_CLASSES=${VAL_CLASSES:-1000}   # training classes held out for the controller's validation
WINDOW=${WINDOW:-50}
VAL_SUBSET=${VAL_SUBSET:-2000}
launch() {
  if [ "$CHILDREN" -gt 1 ]; then
    $TORCHRUN --standalone --nproc_per_node "$CHILDREN" -m fairseq_dynloss.trainer controller.multi_network=true "$@"
  else
    $TRAIN "$@"
  fi
}
for loss in $LOSSES; do
  launch task=sop task.download=true task.val_classes="$VAL_CLASSES" model=embedding_resnet \
    loss="$loss" optim=adam optim.lr=1e-4 controller=ala controller.reward_metric=recall@1 \
    controller.window="$WINDOW" controller.metric_every="$WINDOW" controller.val_subset="$VAL_SUBSET" \
    progress=false hydra.run.dir="outputs/sop-$loss-ala-children$CHILDREN" "$@"
done
