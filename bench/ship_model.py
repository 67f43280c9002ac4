"""Ship a trained checkpoint as a zoo model: fp16 weights in the package, its entry, its pins.

    nice -n 19 .venv/bin/python bench/ship_model.py runs/camvid_cpu_fixed/best.pt --name camvid-lite
    nice -n 19 .venv/bin/python bench/ship_model.py --pins-only --name camvid-lite   # pins only
    .venv/bin/python bench/ship_model.py CKPT --name camvid-lite --latency  # machine quiet!
    .venv/bin/python bench/ship_model.py --name camvid-lite --latency   # latency of the shipped file

Without --pins-only it
1. checks the checkpoint is the entry's network (src/lrnet/zoo.py: model config, run size,
   classes) and writes src/lrnet/weights/<name>.safetensors in float16;
2. checks that the float16 file, loaded back through the zoo, labels like the checkpoint (probe
   image, and the first val images when the dataset is at the config's data.root);
3. records the entry's ``sha256``, ``parameters``, ``val_miou`` (from ``--val-json``, default
   ``<run>/val.json`` as written by ``lrnet evaluate CKPT --backend torch --precision fp32
   --out``, else the run's history.jsonl record of the checkpoint's iteration) and, with
   --latency, ``cpu_latency_ms`` in src/lrnet/weights/<name>.json (``lrnet.zoo.measured`` reads
   it; the other facts there, fast paths and shipped graphs, are kept);
4. writes tests/zoo_pins.json: what tests/test_zoo.py pins (lrnet._pins.prediction_stats);
5. writes the graphs the default path runs beside the weights: src/lrnet/weights/<name>.fp32.onnx
   (so that a fresh install runs ONNX Runtime / OpenVINO without exporting, and without torch)
   and, with --calibrate ROOT (the training images), <name>.int8.onnx, and lists them in the
   entry's ``graphs``. ``--graphs-only`` does step 5 alone from the shipped file.
--latency without a checkpoint measures the shipped file and fills ``cpu_latency_ms`` alone.
--pins-only does step 4 alone from the shipped file: after a change that is meant to change the
outputs (new preprocessing, say). Run ``pytest tests/test_zoo.py`` afterwards.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from lrnet import _pins, checkpoint, pretrained, zoo
from lrnet._errors import LrnetError
from lrnet._files import atomic_write, write_text
from lrnet.inference.backends import cpu_class, cpu_flags, cpu_info
from lrnet.report import read_history

ROOT = Path(__file__).resolve().parents[1]
PINS_FILE = ROOT / "tests" / "zoo_pins.json"


def check_matches_entry(loaded: pretrained.LoadedModel, entry: zoo.ZooEntry) -> None:
    """The checkpoint must be the network, classes and run size the entry describes."""
    wanted = entry.config.get("model", {})
    have = loaded.config.model
    for key, value in wanted.items():
        if getattr(have, key) != value:
            raise LrnetError(
                f"the checkpoint has model.{key}={getattr(have, key)!r}, the entry {value!r}"
            )
    if list(entry.run_size or []) != list(loaded.config.data.eval_size or []):
        raise LrnetError(
            f"run size: checkpoint {loaded.config.data.eval_size}, entry {entry.run_size}"
        )
    if loaded.classes and list(loaded.classes) != list(entry.classes):
        raise LrnetError(f"classes: checkpoint {loaded.classes}, entry {list(entry.classes)}")
    if loaded.palette and [tuple(c) for c in loaded.palette] != list(entry.palette):
        raise LrnetError(f"palette: checkpoint {loaded.palette}, entry {list(entry.palette)}")


def val_stages(ckpt: Path, state: dict[str, Any], val_json: Path | None) -> tuple[list[float], str]:
    """Validation mIoU per stage in percent, and where it comes from."""
    path = val_json or ckpt.parent / "val.json"
    if path.is_file():
        record = json.loads(path.read_text())
        backend = record.get("backend", "fp32")
        if not backend.endswith("fp32"):
            raise LrnetError(
                f"{path} was scored with {backend}; the zoo lists fp32 accuracy: rerun "
                f"lrnet evaluate {ckpt} --backend torch --precision fp32 --out {path}"
            )
        return [round(100 * s["miou"], 1) for s in record["stages"]], str(path)
    history = ckpt.parent / "history.jsonl"
    if not history.is_file():
        return [], "none (no val.json or history.jsonl next to the checkpoint)"
    _, vals = read_history(history)  # a last line torn by a kill is left out
    iteration = (state.get("train_state") or {}).get("iteration")
    same = [r for r in vals if r.get("iteration") == iteration]
    if not same:
        return [], f"none ({history} has no val record of iteration {iteration})"
    stages = same[-1]["stages"]
    return [round(100 * s["miou"], 1) for s in stages], f"{history}, iteration {iteration}"


@torch.inference_mode()
def agreement(
    a: torch.nn.Module, b: torch.nn.Module, images: list[torch.Tensor], size: Any
) -> float:
    """Share of final-stage pixels where the two models give the same label."""
    from lrnet.data.transforms import resize_image

    same = total = 0
    for image in images:
        batch = resize_image(image[None], tuple(size)) if size else image[None]
        la, lb = a(batch)[-1].argmax(1), b(batch)[-1].argmax(1)
        same += int((la == lb).sum())
        total += la.numel()
    return same / total


def check_images(loaded: pretrained.LoadedModel, count: int = 5) -> list[torch.Tensor]:
    """The probe image and the first ``count`` val images when the dataset is there."""
    images = [_pins.probe_image(360, 480)]
    try:
        from lrnet import data as datasets

        dataset = datasets.build(loaded.config.data, loaded.config.data.val_split)
        images += [dataset[i][0] for i in range(min(count, len(dataset)))]
    except Exception as exc:  # the dataset is optional here
        print(f"  (val images not used: {type(exc).__name__}: {str(exc)[:120]})")
    return images


def latency_ms(entry: zoo.ZooEntry, repeats: int = 20) -> tuple[float, str]:
    """Median milliseconds of Predictor.predict on a 360x480 image as `lrnet predict` runs it
    (``backend="auto"``), and the backend that ran."""
    from lrnet.inference.predictor import Predictor

    predictor = Predictor.from_pretrained(entry)
    image = _pins.probe_image(360, 480)
    for _ in range(3):
        predictor.predict(image)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        predictor.predict(image)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times), predictor.runtime


def latency_values(entry: zoo.ZooEntry) -> dict[str, Any]:
    """The entry's ``cpu_latency_ms`` and ``latency_note`` fields, measured now."""
    ms, runtime = latency_ms(entry)
    h, w = entry.run_size or (360, 480)
    note = (
        f"lrnet predict of one 360x480 image (run at {h}x{w}), {runtime}, batch 1, "
        f"{torch.get_num_threads()} threads, median of 20, {cpu_info().get('model name', 'CPU')} "
        f"({cpu_class()} CPU: {' '.join(cpu_flags()) or 'no listed flags'})"
    )
    print(f"CPU latency: {ms:.1f} ms ({note})")
    return {"cpu_latency_ms": round(ms, 1), "latency_note": note}


def record_facts(name: str, values: dict[str, Any]) -> None:
    """Set ``values`` among the measured facts of entry ``name`` (``lrnet.zoo.facts_path``),
    keeping the others."""
    path = zoo.facts_path(name)
    facts = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    write_text(path, json.dumps({**facts, **values}, indent=1) + "\n")
    print(f"recorded {', '.join(values)} of {name} in {path}")


def write_pins(entry: zoo.ZooEntry) -> None:
    pins = json.loads(PINS_FILE.read_text()) if PINS_FILE.is_file() else {}
    pins[entry.name] = {
        "sha256": entry.sha256,
        "regenerate": f"python bench/ship_model.py --pins-only --name {entry.name}",
        **_pins.prediction_stats(entry),
    }
    PINS_FILE.write_text(json.dumps(pins, indent=1) + "\n")
    print(
        f"wrote {PINS_FILE} ({entry.name}: final fractions {pins[entry.name]['final_fractions']})"
    )


def ship_graphs(entry: zoo.ZooEntry, calibrate: Path | None) -> None:
    """Write the fp32 graph (and, with ``calibrate``, the int8 graph) of the shipped weights
    into the package beside them, and record their names in the entry's facts."""
    from lrnet.inference import graphs
    from lrnet.sources import open_model

    loaded = open_model(entry)
    made = {"fp32": graphs.cached_onnx(loaded)}
    if calibrate is not None:
        made["int8"] = graphs.cached_int8(loaded, calibrate, progress=print)
    names = []
    for precision, source in made.items():
        target = zoo.weights_dir() / f"{entry.name}.{precision}.onnx"
        if source.resolve() != target.resolve():
            data = source.read_bytes()
            atomic_write(target, lambda f, data=data: f.write(data))
        names.append(target.name)
        print(f"wrote {target} ({target.stat().st_size / 1e6:.2f} MB)")
    kept = [g for g in entry.graphs if g not in names and (zoo.weights_dir() / g).is_file()]
    stale = [
        g
        for g in kept
        if graphs.read_metadata(zoo.weights_dir() / g).get("fingerprint")
        != graphs.weights_fingerprint(loaded)
    ]
    if stale:
        print(
            f"warning: {', '.join(stale)} do not belong to these weights: make them again "
            "with --calibrate ROOT, or delete them (auto never runs them)"
        )
    record_facts(entry.name, {"graphs": sorted({*names, *kept})})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", nargs="?", type=Path, help="the run's best.pt")
    parser.add_argument("--name", required=True, choices=sorted(zoo.ZOO))
    parser.add_argument("--val-json", type=Path, help="lrnet evaluate --out of the checkpoint")
    parser.add_argument(
        "--latency", action="store_true", help="measure CPU latency (quiet machine)"
    )
    parser.add_argument("--pins-only", action="store_true", help="only rewrite tests/zoo_pins.json")
    parser.add_argument(
        "--calibrate", type=Path, metavar="ROOT", help="make the int8 graph from these images"
    )
    parser.add_argument(
        "--graphs-only", action="store_true", help="only write the shipped weights' graphs"
    )
    args = parser.parse_args()
    entry = zoo.ZOO[args.name]
    if args.pins_only:
        write_pins(entry)
        return 0
    if args.graphs_only:
        ship_graphs(entry, args.calibrate)
        return 0
    if args.checkpoint is None and args.latency and entry.sha256:
        record_facts(entry.name, latency_values(entry))
        return 0
    if args.checkpoint is None or entry.file is None:
        parser.error("give the checkpoint; the entry must name a package file")
    state = checkpoint.load_checkpoint(args.checkpoint)
    loaded = pretrained.load_model(args.checkpoint)
    check_matches_entry(loaded, entry)

    target = zoo.weights_dir() / entry.file
    pretrained.save_weights(loaded.model, target, dtype=torch.float16)
    shipped = dataclasses.replace(
        entry,
        sha256=zoo.sha256_of(target),
        parameters=sum(p.numel() for p in loaded.model.parameters()),
    )
    print(f"wrote {target}: {target.stat().st_size / 1e6:.2f} MB, sha256 {shipped.sha256}")

    half = pretrained.load_model(shipped).model
    agree = agreement(loaded.model, half, check_images(loaded), entry.run_size)
    print(f"float16 file vs checkpoint: {100 * agree:.3f}% of final-stage labels agree")
    if agree < 0.995:
        raise SystemExit("the float16 weights label differently from the checkpoint; not shipped")

    stages, origin = val_stages(args.checkpoint, state, args.val_json)
    print(f"val mIoU per stage: {stages or 'none'} (from {origin})")
    shipped = dataclasses.replace(shipped, val_miou=tuple(stages))
    values: dict[str, Any] = {
        "sha256": shipped.sha256,
        "parameters": shipped.parameters,
        "val_miou": list(stages),
    }
    if args.latency:
        values.update(latency_values(shipped))
    record_facts(entry.name, values)
    write_pins(shipped)
    ship_graphs(shipped, args.calibrate)
    print("next: pytest tests/test_zoo.py, then lrnet models")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except LrnetError as exc:
        sys.exit(f"ship_model: {exc}")
