#!/usr/bin/env bash
# docs/results.md on the CPU: LRN's CPU recipe on CamVid, then the paper's comparisons under the same
# recipe and budget (each about an hour here), each evaluated on val at the original 360x480 labels,
# plain and with flip test-time augmentation. The GPU runs are experiments/camvid/gpu_camvid.sh.
#   bash experiments/camvid/reproduce_camvid.sh [CAMVID_ROOT] [RUNS_DIR]     (all runs)
#   ONLY="lrn segnet" bash experiments/camvid/reproduce_camvid.sh             (some of them)
# Extra key=value overrides for every run go in $OVERRIDES (e.g. OVERRIDES="optim.iterations=600").
set -euo pipefail
cd "$(dirname "$0")/../.."
root=${1:-../shared/data/camvid}
runs=${2:-runs/camvid_cpu}
lrnet=${LRNET:-.venv/bin/lrnet}
read -r -a extra <<< "${OVERRIDES:-}"

declare -A variant=(
  [lrn]="model.name=lrn"
  [segnet]="model.name=segnet"
  [segnet_ds]="model.name=segnet_ds"
  [lrn_s6_only]="model.name=lrn loss.stage_weights=[0,0,0,0,0,1]"
  [lrn_gated]="model.name=lrn_gated"
)
for name in ${ONLY:-lrn segnet segnet_ds lrn_s6_only lrn_gated}; do
  read -r -a args <<< "${variant[$name]}"
  out="$runs/$name"
  start=$(date +%s)
  "$lrnet" train configs/camvid_cpu.yaml "data.root=$root" "run.out_dir=$out" run.progress=false \
    "${args[@]}" "${extra[@]}"
  echo "$name: trained in $(( $(date +%s) - start )) s" | tee -a "$runs/wallclock.txt"
  "$lrnet" evaluate "$out/best.pt" --data "$root" --split val --out "$out/val.json"
  "$lrnet" evaluate "$out/best.pt" --data "$root" --split val --flip --out "$out/val_flip.json"
done
