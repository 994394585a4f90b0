#!/usr/bin/env bash
# Stanford Online Products, ALA with focal weighting (ALA Table 3, "Margin + ALA (focal
# weighting)"): per anchor 1/phi1 log[1 + sum_pos exp(phi1 (d+ - alpha))]
# + 1/phi2 log[1 + sum_neg exp(-phi2 (d- - alpha))]; the controller moves (phi1, phi2).
# POLICY=path/to/ala_controller.pt transfers a trained policy without updating it (Table 3,
# "policy transfer"; the policy must come from a focal-weighting run: same state size).
set -euo pipefail
TRAIN=${TRAIN:-dynloss-train}
VAL_CLASSES=${VAL_CLASSES:-1000}
WINDOW=${WINDOW:-50}
VAL_SUBSET=${VAL_SUBSET:-2000}
POLICY=${POLICY:-}
extra=()
if [ -n "$POLICY" ]; then
  extra=(controller.policy_path="$POLICY" controller.train_policy=false)
fi
$TRAIN task=sop task.download=true task.val_classes="$VAL_CLASSES" model=embedding_resnet \
  loss=focal_weighting optim=adam optim.lr=1e-4 controller=ala controller.reward_metric=recall@1 \
  controller.window="$WINDOW" controller.metric_every="$WINDOW" controller.val_subset="$VAL_SUBSET" \
  progress=false hydra.run.dir="outputs/sop-focal_weighting-ala${POLICY:+-transfer}" ${extra[@]+"${extra[@]}"} "$@"
