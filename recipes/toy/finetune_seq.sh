#!/usr/bin/env bash
# Fine-tune the toy transformer CE model with each sequence-level criterion (expected_bleu and
# the L2T-DLF Table 3 baselines), evaluate each with evaluate.sh, print the results-table rows.
#   finetune_seq.sh            (after run_all.sh has trained and scored transformer_ce)
# SEQ_UPDATES (default 300) updates per criterion; finished runs are skipped on a re-run.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/common.sh"
SEQ_UPDATES="${SEQ_UPDATES:-300}"
CE_CKPT="$WORK/checkpoints/transformer_ce/checkpoint_best.pt"
[[ -f "$CE_CKPT" ]] || { echo "finetune_seq.sh: no $CE_CKPT; run run_all.sh (transformer_ce) first" >&2; exit 2; }
STATE_DIM=64  # --decoder-embed-dim of ARCH_ARGS_transformer in common.sh


# name | criterion | start checkpoint | extra fairseq-train args
COMMON="--lr 0.0005 --warmup-updates 1 --dropout 0.1 --max-tokens 1000"
RUNS=(
    # Control: the same fine-tuning schedule with plain cross-entropy (more training alone).
    "transformer_ce_cont|ce|$CE_CKPT|"
    "transformer_ce_mrt|expected_bleu|$CE_CKPT|--seq-candidates 8 --seq-alpha 0.2 --nll-weight 0.1"
    "transformer_ce_reinforce|reinforce_bleu|$CE_CKPT|--seq-candidates 4 --reinforce-baseline learned --decoder-state-dim $STATE_DIM --nll-weight 0.1"
    "transformer_ce_ac|actor_critic_bleu|$CE_CKPT|--seq-candidates 4 --decoder-state-dim $STATE_DIM --nll-weight 0.3"
    "transformer_ce_smm|softmax_margin|$CE_CKPT|--seq-candidates 4 --nll-weight 0.3"
)
NAMES=(transformer_ce)
for run in "${RUNS[@]}"; do
    IFS='|' read -r name criterion start extra <<< "$run"
    NAMES+=("$name")
    if [[ -f "$WORK/results/$name.bleu.json" ]]; then
        echo "[finetune_seq] $name already scored; skipping"
        continue
    fi
    # shellcheck disable=SC2086  # $COMMON and $extra are lists of words
    MAX_UPDATE="$SEQ_UPDATES" bash "$HERE/train.sh" "$name" transformer "$criterion" \
        --finetune-from-model "$start" $COMMON $extra
    bash "$HERE/evaluate.sh" "$name"
done

python "$REPO/scripts/toy_results_table.py" --work "$WORK" "${NAMES[@]}"
