#!/usr/bin/env bash
# Offline ALA demo on scikit-learn's 8x8 digits (MLP, CPU, a few minutes), SEEDS seeds each:
#   classification, test error %: cross-entropy; the dynamic loss + NLL 0.5 with a fixed Phi;
#     single-network ALA on it; multi-network ALA with 2 children (torchrun, gloo; child r trains
#     from seed + r, so a run gives 2 results);
#   metric learning (digits_metric: train on digits 0-6, test recall@1 on unseen 7-9): the margin
#     loss on a distance mixture with its initial Phi (= the plain margin loss), and with ALA.
# Prints mean +- std (last epoch) per method. Results: $OUT/<method>-seed<seed>/.
set -euo pipefail
TRAIN=${TRAIN:-dynloss-train}
TORCHRUN=${TORCHRUN:-torchrun}
SEEDS=${SEEDS:-"1 2 3"}
OUT=${OUT:-outputs/digits-ala}
common=(progress=false overwrite=true tensorboard=false)
digits=(task=digits model=mlp "${common[@]}")
dynamic=(loss=dynamic loss.form=paper loss.nll_weight=0.5)
metric=(task=digits_metric model=mlp loss=margin_mixture optim=adam optim.lr=1e-3 "${common[@]}")
for seed in $SEEDS; do
  $TRAIN "${digits[@]}" loss=ce seed="$seed" hydra.run.dir="$OUT/ce-seed$seed" "$@"
  $TRAIN "${digits[@]}" "${dynamic[@]}" seed="$seed" hydra.run.dir="$OUT/dynamic-seed$seed" "$@"
  $TRAIN "${digits[@]}" "${dynamic[@]}" controller=ala seed="$seed" hydra.run.dir="$OUT/ala-seed$seed" "$@"
  $TORCHRUN --standalone --nproc_per_node 2 -m fairseq_dynloss.trainer "${digits[@]}" "${dynamic[@]}" \
    controller=ala controller.multi_network=true seed="$seed" hydra.run.dir="$OUT/ala_multi-seed$seed" "$@"
  $TRAIN "${metric[@]}" seed="$seed" hydra.run.dir="$OUT/margin_mixture-seed$seed" "$@"
  $TRAIN "${metric[@]}" controller=ala controller.reward_metric=recall@1 seed="$seed" \
    hydra.run.dir="$OUT/margin_mixture_ala-seed$seed" "$@"
done
python - "$OUT" <<'PY'
import csv, glob, os, statistics, sys
out = sys.argv[1]
def last(path, column):
    return float(list(csv.DictReader(open(path)))[-1][column])
rows = [("ce", "test_error"), ("dynamic", "test_error"), ("ala", "test_error"), ("ala_multi", "test_error"),
        ("margin_mixture", "test_recall@1"), ("margin_mixture_ala", "test_recall@1")]
print(f"{'method':22s} {'metric':14s} {'mean +- std':>16s}  runs")
for method, column in rows:
    paths = sorted(glob.glob(os.path.join(out, f"{method}-seed*", "metrics.csv"))
                   + glob.glob(os.path.join(out, f"{method}-seed*", "child*", "metrics.csv")))
    values = [last(p, column) for p in paths]
    if not values:
        continue
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    print(f"{method:22s} {column:14s} {statistics.fmean(values):8.2f} +- {std:5.2f}  {len(values)}")
PY
