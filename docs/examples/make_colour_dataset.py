"""Write a small folder dataset with colour masks, as an annotation tool would export it."""

import sys
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from lrnet.data.synthetic import SYNTHETIC_CLASSES, SYNTHETIC_PALETTE, generate_synthetic

root = Path(sys.argv[1])
scratch = root.parent / (root.name + "_indices")
generate_synthetic(scratch, num_train=160, num_val=40, size=(128, 160), seed=7)
for sub in ("images", "masks"):
    (root / sub).mkdir(parents=True, exist_ok=True)
palette = np.array(SYNTHETIC_PALETTE, dtype=np.uint8)
for split in ("train", "val"):
    stems = (scratch / "splits" / f"{split}.txt").read_text().split()
    (root / "splits").mkdir(exist_ok=True)
    (root / "splits" / f"{split}.txt").write_text("\n".join(stems) + "\n")
    for stem in stems:
        image = next((scratch / "images").glob(f"{stem}.*"))
        (root / "images" / f"{stem}.jpg").write_bytes(b"")
        Image.open(image).convert("RGB").save(root / "images" / f"{stem}.jpg", quality=92)
        labels = np.asarray(Image.open(next((scratch / "masks").glob(f"{stem}.*"))))
        Image.fromarray(palette[labels]).save(root / "masks" / f"{stem}.png")  # colour mask
classes = {"names": SYNTHETIC_CLASSES, "palette": [list(c) for c in SYNTHETIC_PALETTE]}
(root / "classes.yaml").write_text(yaml.safe_dump(classes, default_flow_style=None))
print(f"wrote {root}: {len(list((root / 'images').iterdir()))} images with colour masks")
