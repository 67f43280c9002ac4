"""The bench/ helpers that feed docs/results.md: the compact CamVid copy and the results tables."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import torch

from lrnet.data import build_dataset
from test_datasets import make_camvid

BENCH = Path(__file__).resolve().parents[1] / "bench"


def load_bench(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_packed_camvid_reads_like_the_original(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_camvid(src, ["a", "b"], split="train", size=(24, 32))
    make_camvid(src, ["c"], split="val", size=(24, 32))
    load_bench("pack_camvid").pack(src, dst, quality=95)

    assert sorted(p.name for p in (dst / "train").iterdir()) == ["a.jpg", "b.jpg"]
    # validation images and every mask are copied byte for byte
    assert (dst / "val" / "c.png").read_bytes() == (src / "val" / "c.png").read_bytes()
    assert (dst / "trainannot" / "a.png").read_bytes() == (
        src / "trainannot" / "a.png"
    ).read_bytes()
    for split in ("train", "val"):
        original, packed = build_dataset("camvid", src, split), build_dataset("camvid", dst, split)
        assert len(packed) == len(original)
        for (image_o, mask_o), (image_p, mask_p) in zip(original, packed, strict=True):
            assert torch.equal(mask_p, mask_o)
            assert image_p.shape == image_o.shape
            if split == "val":
                assert torch.equal(image_p, image_o)


def test_results_tables_rows(tmp_path):
    stages = [{"stage": k, "global_acc": 0.5, "class_acc": 0.4, "miou": 0.1 * k} for k in (1, 2)]
    result = {
        "classes": ["a", "b"],
        "stages": stages,
        "per_class": [
            {"name": "a", "iou": 0.25, "acc": 0.5},
            {"name": "b", "iou": None, "acc": None},
        ],
    }
    path = tmp_path / "val.json"
    path.write_text(json.dumps(result))
    out = subprocess.run(
        [sys.executable, str(BENCH / "results_tables.py"), f"LRN={path}", "--per-class"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert out[2] == "| LRN | 50.0 | 40.0 | **20.0** | 10.0 | 20.0 |"
    assert out[-1] == "| LRN | 25.0 | - |"
