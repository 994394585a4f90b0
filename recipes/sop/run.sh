#!/usr/bin/env bash
# Stanford Online Products (ALA Table 3): triplet and margin losses on an embedding ResNet.
# Pass model.pretrained_path=/path/to/resnet18.pt (torchvision state dict) for ImageNet weights.
set -euo pipefail
TRAIN=${TRAIN:-dynloss-train}
for loss in triplet margin; do
  $TRAIN task=sop task.download=true model=embedding_resnet loss="$loss" optim=adam \
    optim.lr=1e-4 progress=false "$@"
done
