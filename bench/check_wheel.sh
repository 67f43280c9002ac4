#!/usr/bin/env bash
# The built wheel carries the zoo weights: build it, look inside, install it ALONE in a fresh venv
# and label a picture with the shipped model, from a folder outside the checkout.
#   bash bench/check_wheel.sh [WORK_DIR]      (about a minute; installs torch: ~5 GB in WORK_DIR)
# Uses /tmp/constraints.txt when it exists, so the fresh venv gets the project's pinned torch.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-$(mktemp -d /tmp/lrnet-wheel.XXXXXX)}
mkdir -p "$WORK"
PY=${PYTHON:-.venv/bin/python}
NICE="nice -n 19"
CONSTRAINTS=()
[[ -f /tmp/constraints.txt ]] && CONSTRAINTS=(-c /tmp/constraints.txt)

rm -rf dist/lrnet-*.whl
$NICE "$PY" -m build --wheel --outdir dist . >"$WORK/build.log" 2>&1 || { tail -20 "$WORK/build.log"; exit 1; }
WHEEL=$(ls dist/lrnet-*.whl)
echo "built $WHEEL"
$NICE "$PY" - "$WHEEL" <<'EOF'
import sys, zipfile
from lrnet import zoo
names = zipfile.ZipFile(sys.argv[1]).namelist()
for entry in zoo.ZOO.values():
    if entry.file:
        member = f"lrnet/weights/{entry.file}"
        facts = f"lrnet/weights/{entry.name}.json"
        assert member in names, f"{member} is not in the wheel"
        assert facts in names, f"{facts} (its hash, scores, fast paths) is not in the wheel"
        print(f"  {member}, {facts}: in the wheel")
int8 = [n for n in names if n.startswith("lrnet/weights/") and n.endswith(".int8.onnx")]
assert int8, "no shipped int8 graph (lrnet/weights/*.int8.onnx) in the wheel"
print(f"  {', '.join(int8)}: in the wheel")
EOF

$NICE python3 -m venv "$WORK/venv"
$NICE "$WORK/venv/bin/pip" install -q "${CONSTRAINTS[@]}" "$WHEEL"
mkdir -p "$WORK/run"
cd "$WORK/run"  # away from the checkout: only the installed package is importable
"$WORK/venv/bin/python" -c "
import numpy as np; from PIL import Image
y, x = np.mgrid[0:360, 0:480]
img = np.stack([120 + 60 * (y < 150), 130 + 40 * (y < 150), 140 + 90 * (y < 150)], -1)
Image.fromarray(img.astype(np.uint8)).save('street.png')"
$NICE "$WORK/venv/bin/lrnet" models >models.txt && head -4 models.txt
$NICE "$WORK/venv/bin/lrnet" predict --model camvid-lite street.png --out out 2>predict.err \
    || { cat predict.err; exit 1; }
cat predict.err
grep -q "running .* int8 (" predict.err \
    || { echo "the installed wheel did not run its shipped int8 graph"; exit 1; }
ls -l out
"$WORK/venv/bin/python" -c "import lrnet, sys; assert 'site-packages' in lrnet.__file__, lrnet.__file__; print('imported from', lrnet.__file__)"
echo "wheel check passed ($WORK; remove it when done)"
