set -euo pipefail
# The script that ran for docs/own_data.md, as it ran (paths of that machine); its logs are beside it.
export LRNET_HOME=${LRNET_HOME:-$(mktemp -d)}  # an empty cache, as on a fresh install
B=/work/main/.venv/bin
rm -rf /tmp/w/own && mkdir -p /tmp/w/own && cd /tmp/w/own
$B/python /work/main/docs/examples/make_colour_dataset.py my_data > make.log 2>&1
$B/lrnet check-dataset folder my_data > check.log 2>&1
S=$(date +%s.%N)
$B/lrnet train folder data.root=my_data run.out_dir=runs/finetune \
  data.base_size=null data.crop_size=[128,160] data.eval_size=null \
  optim.iterations=300 run.val_interval=300 run.checkpoint_interval=300 > ft.log 2>&1
E=$(date +%s.%N); echo "finetune $(echo "$E - $S" | bc)" > times.txt
S=$(date +%s.%N)
$B/lrnet train folder data.root=my_data run.out_dir=runs/scratch model.init=null \
  data.base_size=null data.crop_size=[128,160] data.eval_size=null \
  optim.iterations=300 run.val_interval=300 run.checkpoint_interval=300 > scratch.log 2>&1
E=$(date +%s.%N); echo "scratch $(echo "$E - $S" | bc)" >> times.txt
$B/lrnet evaluate runs/finetune/best.pt --split val > ft_eval.log 2>&1
$B/lrnet evaluate runs/scratch/best.pt --split val > scratch_eval.log 2>&1
$B/lrnet predict runs/finetune/best.pt my_data/images/val_00000.jpg --out preds > pred.log 2>&1
echo ok > done
