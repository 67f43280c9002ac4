"""Every precision off the calibration distribution: val under brightness gains and gammas.

    .venv/bin/python -m bench.brightness --data ../shared/data/camvid \
        --int8 old=/tmp/u8s8.int8.onnx --out docs/brightness.md

Each val image is changed by ``lrnet.inference.image.photometric`` (``clip(gain * x ** gamma)``:
gains 0.5 .. 2.0 at gamma 1, gammas 0.5 .. 2.0 at gain 1) and labelled through ``Predictor`` by
fp32 PyTorch, bf16 PyTorch (autocast; emulated, so slow, where the CPU lacks native bf16) and the
model's int8 graph on OpenVINO and ONNX Runtime (the one ``auto`` would use; ``--int8 NAME=FILE``
adds others, e.g. an older graph). Per condition: s_6 mIoU and the share of labels equal to fp32.

Toy run (a minute): ``--val-images 2 --gains 0.5 2 --gammas 2``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from bench import measure
from lrnet.inference.backends import OnnxRuntimeBackend, OpenVinoBackend, TorchBackend, cpu_class


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="camvid-lite")
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--val-images", type=int)
    parser.add_argument("--gains", type=float, nargs="*", default=[0.5, 0.75, 1.0, 1.5, 2.0])
    parser.add_argument("--gammas", type=float, nargs="*", default=[0.5, 0.75, 1.5, 2.0])
    parser.add_argument("--int8", nargs="*", default=[], metavar="NAME=FILE")
    parser.add_argument("--no-bf16", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("docs/brightness.md"))
    return parser.parse_args(argv)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def predictors(loaded: Any, args: argparse.Namespace) -> dict[str, Any]:
    from lrnet.inference.graphs import cached_int8
    from lrnet.inference.predictor import Predictor

    size, classes = loaded.config.data.eval_size, loaded.config.model.num_classes
    backends: dict[str, Any] = {"torch fp32": TorchBackend(loaded.model, "fp32")}
    if not args.no_bf16:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # emulated bf16 is measured, and named so
            backends["torch bf16"] = TorchBackend(loaded.model, "bf16")
    graphs = {"int8": cached_int8(loaded)}
    graphs |= dict(item.split("=", 1) for item in args.int8)
    for name, path in graphs.items():
        backends[f"openvino {name}"] = OpenVinoBackend(path, "int8", args.threads)
        backends[f"onnxruntime {name}"] = OnnxRuntimeBackend(path, "int8", args.threads)
    return {k: Predictor(b, eval_size=size, num_classes=classes) for k, b in backends.items()}


def sweep(runners: dict[str, Any], loaded: Any, args: argparse.Namespace) -> list[dict]:
    import torch

    from lrnet.data import build_dataset
    from lrnet.data._io import to_numpy
    from lrnet.inference.image import photometric
    from lrnet.metrics import ConfusionMatrix

    data = loaded.config.data
    dataset = build_dataset(data.dataset, args.data, args.split, **dict(data.options))
    count = len(dataset) if args.val_images is None else min(args.val_images, len(dataset))
    conditions = [(g, 1.0) for g in args.gains] + [(1.0, g) for g in args.gammas]
    classes = loaded.config.model.num_classes
    rows = []
    for gain, gamma in conditions:
        matrices = {k: ConfusionMatrix(classes, data.ignore_index) for k in runners}
        same, pixels = dict.fromkeys(runners, 0), 0
        for index in range(count):
            image, mask = dataset[index]
            image = torch.from_numpy(photometric(to_numpy(image), gain, gamma))
            reference = None
            for key, predictor in runners.items():
                labels = torch.from_numpy(predictor.predict(image).labels)
                reference = labels if reference is None else reference
                matrices[key].update(mask[None], labels[None])
                same[key] += int((labels == reference).sum())
            pixels += reference.numel()
        row = {"gain": gain, "gamma": gamma, "images": count}
        for key, matrix in matrices.items():
            row[key] = {"miou": 100 * matrix.compute()["miou"], "agreement": same[key] / pixels}
        rows.append(row)
        log(
            f"gain {gain} gamma {gamma}: " + ", ".join(f"{k} {row[k]['miou']:.1f}" for k in runners)
        )
    return rows


def format_table(rows: list[dict], keys: list[str], results: dict[str, Any]) -> str:
    head = " | ".join(f"{k}: mIoU / = fp32" for k in keys)
    lines = [
        f"`{results['command']}` ({results['started']}, {results['seconds']:.0f} s)",
        "",
        f"CPU: {results['machine']['cpu']}; class `{results['cpu_class']}`; "
        f"{results['machine']['threads used']} threads; {rows[0]['images']} {results['split']} "
        "images per condition",
        "",
        f"| gain | gamma | {head} |",
        "|---:|---:|" + "---:|" * len(keys),
    ]
    for row in rows:
        cells = " | ".join(f"{row[k]['miou']:.1f} / {100 * row[k]['agreement']:.1f}%" for k in keys)
        lines.append(f"| {row['gain']:g} | {row['gamma']:g} | {cells} |")
    return "\n".join([*lines, ""])


def main(argv: list[str] | None = None) -> int:
    from lrnet.pretrained import load_model

    args = parse_args(argv)
    measure.set_threads(args.threads)
    start = time.perf_counter()
    loaded = load_model(args.model)
    runners = predictors(loaded, args)
    rows = sweep(runners, loaded, args)
    results = {
        "command": " ".join(["python -m bench.brightness", *(argv or sys.argv[1:])]),
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "seconds": time.perf_counter() - start,
        "machine": measure.describe_machine(args.threads),
        "cpu_class": cpu_class(),
        "split": args.split,
        "rows": rows,
    }
    text = format_table(rows, list(runners), results)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
