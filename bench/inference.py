"""Every backend x precision of a model: speed, CamVid val mIoU of every stage, label agreement.

    .venv/bin/pip install -e '.[bench,openvino]'
    .venv/bin/python -m bench.inference --model camvid-lite --data ../shared/data/camvid \
        --calibrate ../shared/data/camvid --paper --out docs/inference_raw.md

For each model (``--model``, any source ``lrnet.pretrained.load_model`` takes) and each backend x
precision that runs here: latency at batch 1 and throughput at batch 8 (``--threads``, default 2)
of the network alone at 360 x 480 and at the model's run size, and of ``Predictor.predict`` on
one 360 x 480 image (resize in and out included); CamVid val mIoU of s_6 and of every stage
(``lrnet.evaluate``'s protocol: run at the eval size, scored at the labels' size); and the
fraction of val pixels whose label equals fp32 PyTorch's. All variants are timed in turns
(in blocks that take turns, ``bench.measure.time_in_blocks``), so load from elsewhere falls on
all of them alike and no runtime's spinning threads are charged to another. ``--paper`` adds the paper's
network (``lrn``, VGG16-BN, width 1.0, 11 classes) with random weights, for timing only: the
default (``auto``) beside fp32 PyTorch at 360 x 480, batch 1. The script prints one Markdown
table per model and its ``fast_paths`` line for this kind of CPU (``ZooEntry.fast_paths`` in
``src/lrnet/weights/<name>.json``: the pairs within ``AUTO_TOLERANCE`` mIoU of fp32 PyTorch, fastest first),
and writes the Markdown and a JSON file.
For the paper's network it gives the ratio to fp32 PyTorch of the default (random weights: ONNX
Runtime fp32) and of the pair the measured model's fast paths put first.

Toy run (checks the script end to end in a minute or two; the figures mean nothing):

    .venv/bin/python -m bench.inference --model runs/camvid_cpu_fixed/best.pt \
        --data ../shared/data/camvid --calibrate ../shared/data/camvid --calibration-images 2 \
        --val-images 2 --size 64 96 --repeats 1 1 --paper --paper-width 0.125 --out /tmp/inf.md
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from bench import measure
from lrnet.inference.backends import (
    SUPPORTED,
    cpu_class,
    cpu_has_native_bf16,
    describe,
    is_available,
    stage_module,
)

PAPER = "paper network (lrn, vgg16_bn, width {width}, random weights)"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", nargs="*", default=["camvid-lite"], help="model sources")
    parser.add_argument("--data", help="CamVid root for the val mIoU (none: timing only)")
    parser.add_argument("--split", default="val")
    parser.add_argument("--val-images", type=int, help="score only the first N val images")
    parser.add_argument(
        "--calibrate", help="training images for int8 (default: only an int8 graph made before)"
    )
    parser.add_argument(
        "--calibration-images", type=int, default=64, help="for models that ship no int8 graph"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, nargs=2, default=[360, 480], metavar=("H", "W"))
    parser.add_argument("--batch", type=int, default=8, help="the throughput batch size")
    parser.add_argument(
        "--repeats", type=int, nargs=2, default=[7, 3], help="timed rounds at batch 1 and batch N"
    )
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--paper", action="store_true", help="also time the paper's network")
    parser.add_argument("--paper-width", type=float, default=1.0, help="(toy runs: smaller)")
    parser.add_argument(
        "--backends", nargs="*", help="only these, e.g. torch:fp32 onnxruntime:int8"
    )
    parser.add_argument("--out", type=Path, default=Path("docs/inference_raw.md"))
    return parser.parse_args(argv)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def pairs(wanted: list[str] | None) -> list[tuple[str, str]]:
    """Every backend x precision whose runtime is installed (or the ``--backends`` asked)."""
    found = [(b, p) for b, precisions in SUPPORTED.items() for p in precisions if is_available(b)]
    if wanted:
        asked = [tuple(w.split(":")) for w in wanted]
        found = [pair for pair in found if pair in asked]
    return found


def paper_checkpoint(folder: Path, width: float) -> Path:
    """A checkpoint of the paper's network with seeded random weights (the same file every run,
    so its exported graphs are cached between runs)."""
    from lrnet import checkpoint
    from lrnet.config import load_config
    from lrnet.models import build_model

    torch.manual_seed(0)
    model = build_model("lrn", 11, encoder="vgg16_bn", width=width)
    overrides = [
        "model.num_classes=11",
        f"model.width={width}",
        "data.dataset=camvid",
        "data.eval_size=[360,480]",
    ]
    config = load_config(None, overrides)
    path = folder / f"paper-width{width}.pt"
    checkpoint.save_checkpoint(path, checkpoint.training_state(model.eval(), config))
    return path


def load_predictors(source: Any, args: argparse.Namespace) -> dict[str, Any]:
    """``"backend precision"`` -> Predictor, for every pair that can run (others are noted)."""
    from lrnet.inference.predictor import Predictor

    predictors: dict[str, Any] = {}
    for backend, precision in pairs(args.backends):
        key = f"{backend} {precision}"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # emulated bf16 is measured, and marked so
                predictors[key] = Predictor.from_pretrained(
                    source, backend=backend, precision=precision, threads=args.threads
                )
        except Exception as exc:  # a pair that cannot run here is reported, not fatal
            log(f"{source}: {key} skipped: {exc}")
    return predictors


def time_all(predictors: dict[str, Any], args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Network latency / throughput at the two sizes and predict's latency, round-robin."""
    from lrnet.inference.image import run_size

    first = next(iter(predictors.values()))
    sizes = {"full": tuple(args.size)}
    eval_size = first.eval_size
    sizes["run"] = tuple(eval_size) if eval_size else tuple(args.size)
    generator = torch.Generator().manual_seed(0)
    results: dict[str, dict[str, Any]] = {key: {} for key in predictors}
    for label, (height, width) in sizes.items():
        for batch, repeats in ((1, args.repeats[0]), (args.batch, args.repeats[1])):
            images = torch.rand(batch, 3, height, width, generator=generator)
            runners = {k: (lambda p=p, x=images: p.backend.run(x)) for k, p in predictors.items()}
            samples = measure.time_in_blocks(runners, args.warmup, repeats)
            for key, seconds in samples.items():
                stats = measure.summarize_samples(seconds)
                results[key][f"{label}_b{batch}"] = {
                    **stats,
                    "size": [height, width],
                    "images_per_s": batch / stats["median"],
                }
    # what a user waits for: one 360x480 (--size) image in, labels at its size out
    image = torch.rand(3, *args.size, generator=generator)
    runners = {k: (lambda p=p: p.predict(image)) for k, p in predictors.items()}
    for key, seconds in measure.time_in_blocks(runners, args.warmup, args.repeats[0]).items():
        results[key]["predict_b1"] = {
            **measure.summarize_samples(seconds),
            "run_size": list(run_size(*args.size, eval_size)),
        }
    return results


def score_all(predictors: dict[str, Any], args: argparse.Namespace, loaded: Any) -> dict:
    """Val mIoU of every stage per pair and final-label agreement with torch fp32."""
    from lrnet.data import build_dataset
    from lrnet.evaluate import stage_probabilities
    from lrnet.metrics import ConfusionMatrix

    data = loaded.config.data
    dataset = build_dataset(data.dataset, args.data, args.split, **dict(data.options))
    count = len(dataset) if args.val_images is None else min(args.val_images, len(dataset))
    reference = "torch fp32"
    matrices: dict[str, list[ConfusionMatrix]] = {}
    agree = dict.fromkeys(predictors, 0)
    pixels = 0
    num_classes = loaded.config.model.num_classes
    models = {key: stage_module(p.backend) for key, p in predictors.items()}
    with torch.inference_mode():
        for index in range(count):
            image, mask = dataset[index]
            finals = {}
            for key, model in models.items():
                probs = stage_probabilities(model, image[None], eval_size=data.eval_size)
                if key not in matrices:
                    matrices[key] = [ConfusionMatrix(num_classes, data.ignore_index) for _ in probs]
                for matrix, p in zip(matrices[key], probs, strict=True):
                    matrix.update(mask[None], p.argmax(1))
                finals[key] = probs[-1].argmax(1)
            if reference in finals:
                for key, labels in finals.items():
                    agree[key] += int((labels == finals[reference]).sum())
                pixels += finals[reference].numel()
            log(f"scored {index + 1}/{count}")
    scores: dict[str, dict[str, Any]] = {}
    for key, stage_matrices in matrices.items():
        stages = [100 * m.compute()["miou"] for m in stage_matrices]
        scores[key] = {
            "stage_miou": stages,
            "miou": stages[-1],
            "agreement": agree[key] / pixels if pixels else None,
            "images": count,
        }
    return scores


def fast_paths(rows: dict[str, dict[str, Any]], tolerance: float) -> list[tuple[str, str]]:
    """The pairs within ``tolerance`` mIoU of torch fp32, fastest first at batch 1 (run size)."""
    reference = rows.get("torch fp32", {}).get("miou")
    if reference is None:
        return []
    good = [
        (row["timing"]["run_b1"]["median"], key)
        for key, row in rows.items()
        if row.get("miou") is not None
        and reference - row["miou"] <= tolerance
        and not row.get("emulated")
    ]
    ordered = [tuple(key.split(" ")) for _, key in sorted(good)]
    return [(b, p) for b, p in ordered]  # type: ignore[misc]


def _ms(entry: dict[str, Any] | None) -> str:
    return "-" if entry is None else f"{1000 * entry['median']:.1f}"


def _rate(entry: dict[str, Any] | None) -> str:
    return "-" if entry is None else f"{entry['images_per_s']:.2f}"


def format_model(name: str, model: dict[str, Any], args: argparse.Namespace) -> str:
    rows = model["rows"]
    run = model["run_size"]
    full = f"{args.size[0]}x{args.size[1]}"
    lines = [
        f"### {name}",
        "",
        f"run size {run[0]}x{run[1]}; {args.threads} threads; latency = median of "
        f"{args.repeats[0]} (batch 1) / {args.repeats[1]} (batch {args.batch}) rounds; "
        f"speed-up against torch fp32 at {full}, batch 1",
        "",
        f"| backend | precision | b1 ms {full} | speed-up | b{args.batch} img/s {full} | "
        f"b1 ms {run[0]}x{run[1]} | b{args.batch} img/s {run[0]}x{run[1]} | predict ms "
        f"({full} image) | val mIoU s_6 | Δ vs torch fp32 | mIoU s_1 .. s_6 | labels = torch fp32 |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    reference = rows.get("torch fp32", {})
    ref_ms = reference.get("timing", {}).get("full_b1", {}).get("median")
    for key, row in rows.items():
        backend, precision = key.split(" ")
        timing = row["timing"]
        note = " (emulated)" if row.get("emulated") else ""
        speed = "-"
        if ref_ms:
            speed = f"{ref_ms / timing['full_b1']['median']:.2f}x"
        miou = row.get("miou")
        delta = "-"
        if miou is not None and reference.get("miou") is not None:
            delta = f"{miou - reference['miou']:+.2f}"
        stages = row.get("stage_miou")
        stage_text = " / ".join(f"{s:.1f}" for s in stages) if stages else "-"
        agreement = row.get("agreement")
        lines.append(
            f"| {backend} | {precision}{note} | {_ms(timing.get('full_b1'))} | {speed} | "
            f"{_rate(timing.get(f'full_b{args.batch}'))} | {_ms(timing.get('run_b1'))} | "
            f"{_rate(timing.get(f'run_b{args.batch}'))} | {_ms(timing.get('predict_b1'))} | "
            f"{'-' if miou is None else f'{miou:.2f}'} | {delta} | {stage_text} | "
            f"{'-' if agreement is None else f'{100 * agreement:.2f}%'} |"
        )
    lines.append("")
    lines.append(f"auto runs: {model['auto']}")
    if model.get("fast_paths") is not None:
        kind = model.get("cpu_class", "?")
        lines.append(f"fast_paths[{kind!r}] for {name} = {tuple(model['fast_paths'])!r}")
    return "\n".join(lines)


def run_model(source: Any, name: str, args: argparse.Namespace, score: bool) -> dict[str, Any]:
    from lrnet.inference.auto import AUTO_TOLERANCE
    from lrnet.inference.graphs import cached_int8, packaged
    from lrnet.inference.predictor import Predictor
    from lrnet.pretrained import load_model

    loaded = load_model(source)
    log(f"{name}: preparing backends (exports and int8 calibration are cached)")
    if args.calibrate and packaged(loaded, "int8") is None:  # a shipped graph is what users run
        cached_int8(loaded, args.calibrate, images=args.calibration_images, progress=log)
    predictors = load_predictors(source, args)
    if not predictors:
        raise SystemExit(f"{name}: no backend could run")
    auto = Predictor.from_pretrained(source, threads=args.threads)
    log(f"{name}: timing {', '.join(predictors)}")
    timing = time_all(predictors, args)
    rows: dict[str, dict[str, Any]] = {}
    for key, predictor in predictors.items():
        rows[key] = {
            "runtime": describe(predictor.backend),
            "timing": timing[key],
            "emulated": key.endswith("bf16") and not cpu_has_native_bf16(),
        }
    if score:
        log(f"{name}: scoring on {args.data} {args.split}")
        for key, scores in score_all(predictors, args, loaded).items():
            rows[key].update(scores)
    eval_size = loaded.config.data.eval_size
    result = {
        "rows": rows,
        "run_size": list(eval_size) if eval_size else list(args.size),
        "auto": f"{auto.runtime} ({'; '.join(auto.notes)})",
    }
    if score:
        result["fast_paths"] = fast_paths(rows, AUTO_TOLERANCE)
        result["cpu_class"] = cpu_class()
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    measure.set_threads(args.threads)
    start = time.perf_counter()
    results: dict[str, Any] = {
        "command": " ".join(sys.argv),
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": measure.describe_machine(args.threads),
        "native_bf16": cpu_has_native_bf16(),
        "models": {},
    }
    for source in args.model:
        results["models"][source] = run_model(source, source, args, score=args.data is not None)
    if args.paper:
        with tempfile.TemporaryDirectory() as folder:
            source = paper_checkpoint(Path(folder), args.paper_width)
            paper = run_model(str(source), PAPER.format(width=args.paper_width), args, score=False)
        rows = paper["rows"]
        reference = rows.get("torch fp32", {}).get("timing", {}).get("full_b1", {}).get("median")
        default = paper["auto"].split(" (")[0]
        # Random weights have no mIoU, so auto cannot vouch for a lossy precision on them: also
        # show the pair the first measured model's fast paths put first, as the trained paper
        # network would get it (its FAST_PATHS entry once a GPU has trained it).
        measured = [m["fast_paths"] for m in results["models"].values() if m.get("fast_paths")]
        candidates = {"default": default}
        if measured:
            candidates["measured fast path"] = " ".join(measured[0][0])
        for label, key in candidates.items():
            if reference and key in rows:
                speedup = reference / rows[key]["timing"]["full_b1"]["median"]
                paper.setdefault("speedups", {})[label] = {"pair": key, "speedup": speedup}
        results["models"][PAPER.format(width=args.paper_width)] = paper
    results["seconds"] = time.perf_counter() - start
    sections = [f"# Inference backends ({results['started']}, {results['seconds']:.0f} s)", ""]
    sections.append(f"`{results['command']}`; native bf16: {results['native_bf16']}")
    sections.append("")
    sections.append(
        "| machine | |\n|---|---|\n"
        + "\n".join(f"| {k} | {v} |" for k, v in results["machine"].items())
    )
    for name, model in results["models"].items():
        sections += ["", format_model(name, model, args)]
        for label, entry in model.get("speedups", {}).items():
            sections.append(
                f"{label} ({entry['pair']}) vs torch fp32 at {args.size[0]}x{args.size[1]}, "
                f"batch 1, same run: {entry['speedup']:.2f}x"
            )
    text = "\n".join(sections) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=2, default=str))
    log(f"wrote {args.out} and {args.out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
