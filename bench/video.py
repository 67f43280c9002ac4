"""End-to-end video frames/s of ``lrnet predict`` on a CamVid-sized clip, beside the model's own.

    # 1. the clip: the 101 CamVid val images in name order (one street sequence), 30 fps, H.264
    .venv/bin/python -m bench.video clip            # -> runs/video/camvid_val_360x480.mp4
    # 2. the measurement, 2 threads, on a quiet machine
    .venv/bin/python -m bench.video measure camvid-lite --serial    # or a checkpoint

``measure`` times ``lrnet.inference.video.predict_video`` (decode, resize, infer, overlay, encode: what
``lrnet predict clip.mp4`` runs: threads for ONNX Runtime and OpenVINO, serial for PyTorch) with
its three stages in threads and, with ``--serial``, one after the other; beside it, in the same
process and the same rounds, ``Predictor.predict`` on one decoded 360 x 480 frame (resize,
infer, upsample, argmax) and the model's forward alone at batch 1 at its run size (in the main
thread and in a worker thread, where threaded ``predict_video`` runs it).
It prints frames/s of each and the ratio of end to end to the model's own (main thread).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from lrnet.inference.predictor import Predictor
from lrnet.inference.video import VideoWriter, open_video, predict_video

REPO = Path(__file__).resolve().parents[1]
CAMVID = REPO.parent / "shared" / "data" / "camvid"
CLIP = REPO / "runs" / "video" / "camvid_val_360x480.mp4"


def make_clip(
    root: Path, out: Path, *, split: str = "val", fps: int = 30, limit: int | None = None
) -> int:
    """Encode ``root/split/*.png`` in name order as an H.264 clip; returns the frame count."""
    paths = sorted((root / split).glob("*.png"))[:limit]
    if not paths:
        raise SystemExit(f"no PNG images in {root / split}")
    rate = Fraction(fps)
    with VideoWriter(out, rate, 1 / rate) as writer:
        for index, path in enumerate(paths):
            with Image.open(path) as image:
                writer.write(np.asarray(image.convert("RGB")), index)
        writer.close()
    return len(paths)


def set_threads(threads: int) -> None:
    """Pin PyTorch to ``threads`` intra-op threads and one inter-op thread (as bench.measure)."""
    torch.set_num_threads(threads)
    with contextlib.suppress(RuntimeError):  # settable once per process
        torch.set_num_interop_threads(1)


def _rate(calls: int, run: Any) -> float:
    """Calls per second of ``run`` over ``calls`` calls."""
    start = time.perf_counter()
    for _ in range(calls):
        run()
    return calls / (time.perf_counter() - start)


def measure(
    model: str,
    clip: Path,
    *,
    backend: str,
    precision: str,
    threads: int,
    repeats: int,
    calls: int,
    serial: bool,
) -> dict[str, Any]:
    """Median frames/s over ``repeats`` rounds of every measurement (they take turns per round)."""
    set_threads(threads)
    predictor = Predictor.from_pretrained(
        model, backend=backend, precision=precision, threads=threads
    )
    source = open_video(clip)
    frame = next(iter(source))
    pixels = frame.pixels  # (H, W, 3) uint8 RGB, as the video path hands it to predict
    run_h, run_w = predictor.eval_size or frame.pixels.shape[:2]
    batch = torch.rand(1, 3, run_h, run_w)

    def forward() -> None:
        predictor.backend.run(batch)  # the network alone on the same backend, at its run size

    def in_thread(run: Any) -> float:
        # threaded predict_video runs inference in a worker thread: time the model there too, so a
        # thread that gets fewer intra-op threads than the main one shows up here.
        rates: list[float] = []
        worker = threading.Thread(target=lambda: rates.append(_rate(calls, run)))
        worker.start()
        worker.join()
        return rates[0]

    samples: dict[str, list[float]] = {
        "overlapped": [],
        "serial": [],
        "predict": [],
        "model": [],
        "model_in_thread": [],
    }
    with tempfile.TemporaryDirectory(dir=clip.parent) as out:
        _rate(3, forward)  # warm-up: oneDNN primitives, first-call allocations
        for _ in range(repeats):
            for overlap in (True, False) if serial else (True,):
                start = time.perf_counter()
                outputs = predict_video(predictor, source, out, overlap=overlap, progress=False)
                seconds = time.perf_counter() - start
                samples["overlapped" if overlap else "serial"].append(outputs.frames / seconds)
            samples["predict"].append(_rate(calls, lambda: predictor.predict(pixels)))
            samples["model"].append(_rate(calls, forward))
            samples["model_in_thread"].append(in_thread(forward))
    result = {name: statistics.median(v) for name, v in samples.items() if v}
    return {
        "model": model,
        "runtime": predictor.runtime,
        "notes": predictor.notes,
        "clip": str(clip),
        "frames": outputs.frames,
        "size": list(frame.pixels.shape[:2]),
        "fps": float(source.rate),
        "run_size": [run_h, run_w],
        "threads": threads,
        "repeats": repeats,
        "frames_per_s": result,
        "ratio_to_model": result["overlapped"] / result["model"],
        "torch": torch.__version__,
    }


def report(result: dict[str, Any]) -> str:
    rates = result["frames_per_s"]
    h, w = result["size"]
    rh, rw = result["run_size"]
    lines = [
        f"clip {result['clip']}: {result['frames']} frames, {h}x{w}, {result['fps']:g} fps",
        f"model {result['model']} ({result['runtime']}) at {rh}x{rw}, {result['threads']} threads, "
        f"median of {result['repeats']} rounds",
        f"  end to end, decode | infer | encode in threads : {rates['overlapped']:7.1f} frames/s",
    ]
    if "serial" in rates:
        lines.append(
            f"  end to end, one after the other              : {rates['serial']:7.1f} frames/s"
        )
    lines += [
        f"  Predictor.predict on a {h}x{w} frame          : {rates['predict']:7.1f} frames/s",
        f"  model forward alone, batch 1, {rh}x{rw}        : {rates['model']:7.1f} frames/s",
        f"  the same in a worker thread (as predict_video) : {rates['model_in_thread']:7.1f} frames/s",
        f"  ratio end to end / model                      : {result['ratio_to_model']:7.2f}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.video", description=__doc__.split("\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("clip", help="encode the CamVid val images as a 30 fps clip")
    make.add_argument("--root", type=Path, default=CAMVID, help=f"CamVid root (default {CAMVID})")
    make.add_argument("--split", default="val")
    make.add_argument("--fps", type=int, default=30)
    make.add_argument("--limit", type=int, help="first N images only (a toy check)")
    make.add_argument("--out", type=Path, default=CLIP, help=f"default {CLIP}")
    run = commands.add_parser("measure", help="frames/s of predict on the clip")
    run.add_argument("model", help="a zoo name, checkpoint or folder (Predictor.from_pretrained)")
    run.add_argument("--backend", default="auto", help="as lrnet predict --backend (default auto)")
    run.add_argument("--precision", default="auto", help="as lrnet predict --precision")
    run.add_argument("--clip", type=Path, default=CLIP)
    run.add_argument("--threads", type=int, default=2)
    run.add_argument("--repeats", type=int, default=3, help="rounds; the median is reported")
    run.add_argument("--calls", type=int, default=50, help="model / predict calls per round")
    run.add_argument("--serial", action="store_true", help="also time the one-thread pipeline")
    run.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.command == "clip":
        count = make_clip(args.root, args.out, split=args.split, fps=args.fps, limit=args.limit)
        print(f"{args.out}: {count} frames at {args.fps} fps")
        return 0
    if not args.clip.is_file():
        print(f"no clip at {args.clip}: run `python -m bench.video clip` first", file=sys.stderr)
        return 2
    result = measure(
        args.model,
        args.clip,
        backend=args.backend,
        precision=args.precision,
        threads=args.threads,
        repeats=args.repeats,
        calls=args.calls,
        serial=args.serial,
    )
    print(report(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
