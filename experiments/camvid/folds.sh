#!/usr/bin/env bash
# The fold table of docs/results.md: short runs on CamVid folds held out by sequence (fold-a
# validates on 0006R0, fold-b on 0001TP; docs/datasets.md), today's recipe against the new one, and
# the new one with the loss on s_6 only, and the new one with other class weights (median frequency,
# none; the new recipe itself uses `enet`). Each run is then scored on its fold's held-out sequence
# from last.pt (not best.pt: no choice made on the held-out images), plain and with flip.
#   bash experiments/camvid/folds.sh [CAMVID_ROOT] [RUNS_DIR]
#   ONLY="a_today a_new" ITERATIONS=1000 bash experiments/camvid/folds.sh
# A killed run resumes from its last.pt when the script is run again; finished runs are skipped.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=${1:-../shared/data/camvid}
runs=${2:-runs/folds}
lrnet=${LRNET:-.venv/bin/lrnet}
common="data.root=$root data.num_workers=0 optim.iterations=${ITERATIONS:-1000} run.val_interval=500
  run.checkpoint_interval=100 run.log_interval=50"
new="data.photometric=true data.color_jitter=0.0 data.scale_range=[0.5,2.0]"
s6_only="loss.stage_weights=[0,0,0,0,0,1]"
mf="data.class_weights=median_frequency"
unweighted="data.class_weights=null"
declare -A variant=(
  [a_today]="fold-a" [a_new]="fold-a $new" [a_new_s6]="fold-a $new $s6_only"
  [b_today]="fold-b" [b_new]="fold-b $new" [b_new_s6]="fold-b $new $s6_only"
  [a_new_mf]="fold-a $new $mf" [a_new_unweighted]="fold-a $new $unweighted"
  [b_new_mf]="fold-b $new $mf" [b_new_unweighted]="fold-b $new $unweighted"
)
mkdir -p "$runs"
for name in ${ONLY:-a_today a_new b_today b_new a_new_s6 b_new_s6}; do
  read -r fold args <<< "${variant[$name]}"
  out="$runs/$name"
  if [ ! -f "$out/done" ]; then
    resume=(); [ -f "$out/last.pt" ] && resume=(--resume)
    start=$(date +%s)
    # shellcheck disable=SC2086
    "$lrnet" train camvid_cpu $common $args "data.train_split=$fold-train" \
      "data.val_split=$fold-val" "run.out_dir=$out" "${resume[@]}"
    echo "$name: trained in $(( $(date +%s) - start )) s" | tee -a "$runs/wallclock.txt"
    touch "$out/done"
  fi
  "$lrnet" evaluate "$out/last.pt" --split "$fold-val" --backend torch --precision fp32 --out "$out/heldout.json"
  "$lrnet" evaluate "$out/last.pt" --split "$fold-val" --backend torch --precision fp32 --flip --out "$out/heldout_flip.json"
done
