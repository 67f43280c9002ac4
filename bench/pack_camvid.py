"""Write a compact copy of CamVid (SegNet layout) that fits the GPU machine's 64 MiB transfer limit.

    python bench/pack_camvid.py ../shared/data/camvid .camvid_pack [--quality 95]

Training images are re-encoded as JPEG (4:4:4 chroma, default quality 95: 22 MiB instead of 91 MiB);
validation images and every label file are copied unchanged, so validation scores on the copy equal
those on the original. The split files are rewritten with relative paths to the new files, which
``lrnet`` reads like the originals (``data.root=.camvid_pack``).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from PIL import Image


def pack(src: Path, dst: Path, quality: int) -> None:
    for split in ("train", "val"):
        lines = []
        for line in (src / f"{split}.txt").read_text().splitlines():
            if not line.strip():
                continue
            image, mask = (Path(p) for p in line.split())
            image_src = src / image.parts[-2] / image.name
            mask_rel = Path(mask.parts[-2]) / mask.name
            (dst / mask_rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src / mask_rel, dst / mask_rel)
            if split == "train":
                image_rel = Path(image.parts[-2]) / (image.stem + ".jpg")
                (dst / image_rel).parent.mkdir(parents=True, exist_ok=True)
                Image.open(image_src).convert("RGB").save(
                    dst / image_rel, "JPEG", quality=quality, subsampling=0
                )
            else:
                image_rel = Path(image.parts[-2]) / image.name
                (dst / image_rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(image_src, dst / image_rel)
            lines.append(f"{image_rel} {mask_rel}")
        (dst / f"{split}.txt").write_text("\n".join(lines) + "\n")
        print(f"{split}: {len(lines)} pairs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "src", type=Path, help="CamVid root (SegNet layout, with train.txt, val.txt)"
    )
    parser.add_argument("dst", type=Path)
    parser.add_argument("--quality", type=int, default=95, help="JPEG quality of training images")
    args = parser.parse_args()
    pack(args.src, args.dst, args.quality)


if __name__ == "__main__":
    main()
