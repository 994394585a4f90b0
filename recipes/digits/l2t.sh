#!/usr/bin/env bash
# L2T-DLF on scikit-learn's 8x8 digits (offline, CPU, about 5 minutes): one teacher is trained
# (phase (a), first seed), then an MLP student is trained with it for every seed (the first run
# trains it; the others load it with teacher.path). Controls with the same seeds: cross-entropy,
# and the dynamic loss with the fixed Phi = I and the same NLL mix. Prints the test error (%) of
# the last epoch, mean +- std over the seeds, and the teacher's dev objective over its first and
# last tenth of teacher steps.
#   bash recipes/digits/l2t.sh                              # defaults below
#   bash recipes/digits/l2t.sh teacher.phi_penalty=1.0      # extra overrides for the dynamic-loss runs
# Environment: TRAIN (default dynloss-train), OUT (default outputs/digits-l2t), STEPS (teacher steps,
# 100), UNROLL (T, 50), NLL_WEIGHT (loss.nll_weight, 0.5), SEEDS ("1 2 3").
# Without the NLL mix (NLL_WEIGHT=0) the learned Phi's off-diagonal entries let the student
# lower the loss by pushing wrong classes down without learning (test error 40-80%); see README.
set -euo pipefail
TRAIN=${TRAIN:-dynloss-train}
OUT=${OUT:-outputs/digits-l2t}
STEPS=${STEPS:-100}
UNROLL=${UNROLL:-50}
NLL_WEIGHT=${NLL_WEIGHT:-0.5}
SEEDS=${SEEDS:-"1 2 3"}
read -r -a seeds <<< "$SEEDS"
common=(task=digits model=mlp progress=false overwrite=true)
dynamic=(loss=dynamic loss.form=paper loss.nll_weight="$NLL_WEIGHT")
episodic=(teacher=l2t teacher.mode=episodic teacher.lr=1e-3 teacher.dev_objective=expected_accuracy)  # the paper's Algorithm 1

first=${seeds[0]}
teacher="$OUT/l2t-seed$first/teacher.pt"
for seed in "${seeds[@]}"; do
  $TRAIN "${common[@]}" loss=ce seed="$seed" hydra.run.dir="$OUT/ce-seed$seed"
  $TRAIN "${common[@]}" "${dynamic[@]}" seed="$seed" hydra.run.dir="$OUT/identity-seed$seed" "$@"
  if [ "$seed" = "$first" ]; then  # phase (a) + (b): trains the teacher, then the student
    $TRAIN "${common[@]}" "${dynamic[@]}" "${episodic[@]}" teacher.steps="$STEPS" teacher.unroll="$UNROLL" \
      seed="$seed" hydra.run.dir="$OUT/l2t-seed$seed" "$@"
  else                             # phase (b) only, with the same teacher
    $TRAIN "${common[@]}" "${dynamic[@]}" "${episodic[@]}" teacher.steps="$STEPS" teacher.unroll="$UNROLL" \
      teacher.path="$teacher" seed="$seed" hydra.run.dir="$OUT/l2t-seed$seed" "$@"
  fi
done

python - "$OUT" "${seeds[@]}" <<'PY'
import csv, statistics, sys
out, seeds = sys.argv[1], sys.argv[2:]
def last_test_error(run):
    with open(f"{out}/{run}/metrics.csv") as handle:
        return float(list(csv.DictReader(handle))[-1]["test_error"])
print(f"digits MLP, test error % of the last epoch over seeds {' '.join(seeds)}:")
for name, label in (("ce", "cross-entropy"), ("identity", "dynamic, Phi = I"), ("l2t", "dynamic, L2T teacher")):
    errors = [last_test_error(f"{name}-seed{s}") for s in seeds]
    std = statistics.stdev(errors) if len(errors) > 1 else 0.0
    print(f"  {label:22s} {statistics.mean(errors):6.2f} +- {std:4.2f}   ({', '.join(f'{e:.2f}' for e in errors)})")
with open(f"{out}/l2t-seed{seeds[0]}/teacher_log.csv") as handle:
    dev = [float(row["dev_objective"]) for row in csv.DictReader(handle)]
if dev:
    k = max(1, len(dev) // 10)
    print(f"  teacher dev objective (expected accuracy after T steps): first {k} steps "
          f"{statistics.mean(dev[:k]):.4f}, last {k} steps {statistics.mean(dev[-k:]):.4f}")
PY
