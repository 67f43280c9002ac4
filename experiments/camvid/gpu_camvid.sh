#!/usr/bin/env bash
# CamVid runs on a GPU machine (docs/results.md, "On a GPU").
#   bash experiments/camvid/gpu_camvid.sh screen         CPU-recipe variants, side by side on one GPU
#   bash experiments/camvid/gpu_camvid.sh compare        the paper's five comparisons, CPU recipe
#                                                        (RECIPE=run.seed=1 for a second seed)
#   bash experiments/camvid/gpu_camvid.sh paper SECONDS  full VGG16-BN LRN at 360x480 from scratch,
#                                                        its iterations fitted to SECONDS of training
# Environment: DATA (default ../shared/data/camvid), RUNS (default runs/gpu), LRNET (default: lrnet
# from src/), RECIPE (extra key=value overrides for screen/compare), OUT (copies of the results).
set -euo pipefail
cd "$(dirname "$0")/../.."
data=${DATA:-../shared/data/camvid}
runs=${RUNS:-runs/gpu}
out=${OUT:-$runs}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
read -r -a lrnet <<< "${LRNET:-python3 -m lrnet}"
read -r -a recipe <<< "${RECIPE:-}"
mkdir -p "$runs" "$out"
common=("data.root=$data" run.progress=false run.tensorboard=false)
# screen and compare ran configs/camvid_cpu.yaml as it was before bf16 and 9,000 iterations:
# float32, 5,000 iterations (docs/results.md)
at_5000=(optim.iterations=5000 run.amp=none)

summary() {  # a Markdown row per val.json, named by its path
  local path rows=()
  for path in "$@"; do rows+=("$path=$path"); done
  python3 experiments/camvid/results_tables.py "${rows[@]}"
}

# Train each "name|overrides" of the CPU recipe at once (the small model leaves the GPU mostly idle,
# so runs share it), then score each best checkpoint on val, plain and with test-time augmentation.
side_by_side() {
  local name args
  for spec in "$@"; do
    name=${spec%%|*}; read -r -a args <<< "${spec#*|}"
    ( start=$(date +%s)
      "${lrnet[@]}" train configs/camvid_cpu.yaml "${common[@]}" "run.out_dir=$runs/$name" \
        data.num_workers=3 "${at_5000[@]}" "${recipe[@]}" "${args[@]}" > "$runs/$name.log" 2>&1
      echo "$name: trained in $(( $(date +%s) - start )) s" >> "$runs/wallclock.txt" ) &
  done
  wait
  cat "$runs/wallclock.txt"
  for spec in "$@"; do
    name=${spec%%|*}
    "${lrnet[@]}" evaluate "$runs/$name/best.pt" --data "$data" --out "$runs/$name/val.json" \
      > "$runs/$name/val.md" &
    "${lrnet[@]}" evaluate "$runs/$name/best.pt" --data "$data" --flip \
      --out "$runs/$name/val_flip.json" > "$runs/$name/val_flip.md" &
  done
  wait
  summary "$runs"/*/val.json "$runs"/*/val_flip.json | tee "$out/summary.txt"
  tar czf "$out/runs.tgz" --exclude='*.pt' "$runs"
}

case ${1:-} in
  screen)
    side_by_side \
      "mf|data.class_weights=median_frequency" \
      "none|data.class_weights=null" \
      "enet|data.class_weights=enet" \
      "enet_scale2|data.class_weights=enet data.scale_range=[0.75,2.0]" \
      "enet_lr4|data.class_weights=enet optim.lr=0.004" \
      "enet_up|data.class_weights=enet loss.mode=upsample_logits"
    ;;
  compare)
    side_by_side \
      "lrn|model.name=lrn data.class_weights=enet" \
      "segnet|model.name=segnet data.class_weights=enet" \
      "segnet_ds|model.name=segnet_ds data.class_weights=enet" \
      "lrn_s6_only|model.name=lrn data.class_weights=enet loss.stage_weights=[0,0,0,0,0,1]" \
      "lrn_gated|model.name=lrn_gated data.class_weights=enet"
    ;;
  paper)
    seconds=${2:?usage: gpu_camvid.sh paper SECONDS}
    nvidia-smi -L || true
    probe="$runs/paper_probe"
    "${lrnet[@]}" train configs/camvid_gpu.yaml "${common[@]}" "run.out_dir=$probe" \
      optim.iterations=60 optim.warmup_iters=0 run.val_interval=1000000 run.log_interval=20
    # seconds per iteration over iterations 20..60 (start-up and cuDNN autotuning excluded)
    per_it=$(python3 -c "
import json
r = [json.loads(l) for l in open('$probe/history.jsonl') if '\"train\"' in l]
print((r[-1]['seconds'] - r[0]['seconds']) / (r[-1]['iteration'] - r[0]['iteration']))")
    iters=$(python3 -c "print(int($seconds / $per_it / 1.06) // 100 * 100)")  # ~6% for validations
    echo "probe: $per_it s/iteration -> $iters iterations for $seconds s"
    start=$(date +%s)
    "${lrnet[@]}" train configs/camvid_gpu.yaml "${common[@]}" "run.out_dir=$runs/paper" \
      "optim.iterations=$iters" "run.val_interval=$(( iters / 10 ))" \
      "run.checkpoint_interval=$(( iters / 4 ))"
    echo "paper: $iters iterations trained in $(( $(date +%s) - start )) s" | tee -a "$runs/wallclock.txt"
    "${lrnet[@]}" evaluate "$runs/paper/best.pt" --data "$data" --out "$runs/paper/val.json"
    summary "$runs/paper/val.json" | tee "$out/paper_summary.txt"
    cp "$runs/paper/val.json" "$runs/paper/history.jsonl" "$runs/paper/config.yaml" "$out/"
    ;;
  *)
    sed -n 2,9p "$0"; exit 2 ;;
esac
