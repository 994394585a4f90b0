#!/usr/bin/env bash
# ALA on the toy corpus: train students with --task translation_ala (an ALA controller moves the
# bucketed Phi of the dynamic loss every ALA_INTERVAL updates, rewarded by the dev loss or BLEU),
# next to cross-entropy and the dynamic loss with a fixed identity Phi (the same criterion without
# the controller), over several seeds; score all with sacrebleu and print mean +- std.
# Run after prepare.sh (it is run here too; finished runs are skipped on a re-run).
#   SEEDS="1 2 3"  UPDATES=600  ALA_INTERVAL=20  ALA_REWARD=loss (or bleu)
#   NLL_WEIGHT=0 (--nll-weight of both dynamic-loss kinds)  KINDS="ce dynamic ala"
#   STUDY=ala_study (run-name prefix: give a variant its own, e.g. STUDY=ala_nll05 NLL_WEIGHT=0.5)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/common.sh"
SEEDS="${SEEDS:-1 2 3}"
UPDATES="${UPDATES:-600}"
ALA_INTERVAL="${ALA_INTERVAL:-20}"
ALA_REWARD="${ALA_REWARD:-loss}"
NLL_WEIGHT="${NLL_WEIGHT:-0}"
KINDS="${KINDS:-ce dynamic ala}"
STUDY="${STUDY:-ala_study}"
PHI_ARGS=(--phi-parametrisation bucketed --phi-buckets 8 --nll-weight "$NLL_WEIGHT")
ALA_ARGS=(--task translation_ala --phi-source ala --ala-interval "$ALA_INTERVAL" --ala-reward "$ALA_REWARD"
          --ala-val-batches 2 --ala-val-max-sentences 32)
bash "$HERE/prepare.sh"

NAMES=()
for seed in $SEEDS; do
    for kind in $KINDS; do
        name="${STUDY}_${kind}_seed$seed"
        NAMES+=("$name")
        [[ -f "$WORK/results/$name.bleu.json" ]] && { echo "[ala] $name already scored"; continue; }
        case "$kind" in
            ce) SEED=$seed MAX_UPDATE=$UPDATES bash "$HERE/train.sh" "$name" transformer ce ;;
            dynamic) SEED=$seed MAX_UPDATE=$UPDATES bash "$HERE/train.sh" "$name" transformer dynamic_loss \
                         "${PHI_ARGS[@]}" ;;
            ala) SEED=$seed MAX_UPDATE=$UPDATES bash "$HERE/train.sh" "$name" transformer dynamic_loss \
                     "${PHI_ARGS[@]}" "${ALA_ARGS[@]}" ;;
            *) echo "ala.sh: unknown kind '$kind' in KINDS; expected ce, dynamic or ala" >&2; exit 2 ;;
        esac
        bash "$HERE/evaluate.sh" "$name"
    done
done
# What the controller did: rewards, how far W = |h| B moved, its time.
if [[ " $KINDS " == *" ala "* ]]; then
python - "$WORK/checkpoints" "$STUDY" $SEEDS <<'PY'
import csv, os, sys
root, study, seeds = sys.argv[1], sys.argv[2], sys.argv[3:]
for seed in seeds:
    rows = list(csv.DictReader(open(os.path.join(root, f"{study}_ala_seed{seed}", "ala_log.csv"))))
    rewards = [float(r["reward"]) for r in rows if r["reward"] != ""]
    last = rows[-1]
    print(f"[ala] seed {seed}: {len(rows)} windows, rewards +1/0/-1: {rewards.count(1.0)}/"
          f"{rewards.count(0.0)}/{rewards.count(-1.0)}, final W mean |.| {float(last['W_mean_abs']):.4f} "
          f"range [{float(last['W_min']):.3f}, {float(last['W_max']):.3f}], policy entropy "
          f"{float(last['entropy']):.3f}, controller time {sum(float(r['seconds']) for r in rows):.1f} s")
PY
fi
python "$REPO/scripts/toy_results_table.py" --work "$WORK" --group-seeds "${NAMES[@]}" | tee "$WORK/${STUDY}_results.md"
