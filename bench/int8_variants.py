"""Which int8 format can run on this CPU: accuracy, label agreement and speed of each.

    .venv/bin/pip install -e '.[bench]'     # NNCF, for its overflow fix
    .venv/bin/python -m bench.int8_variants --data ../shared/data/camvid \
        --out docs/int8_variants.md

For one model (default ``camvid-lite``) it makes an int8 graph per format (``--schemes``, the keys
of ``lrnet.inference.graphs.INT8_SCHEMES``: u8 activations x s8 weights in 8 or 7 bits, u8 x u8, s8 x s8),
calibrated on the same training images (``--calibration``: ``N`` plain images, or ``N+`` with the
photometric copies of ``lrnet.inference.graphs.CALIBRATION_VARIANTS``), plus NNCF's quantisation of the
fp32 graph through OpenVINO with its overflow fix on every layer and on the first only (its
default). Each graph runs on OpenVINO and ONNX Runtime, through ``Predictor`` (the path ``lrnet
predict`` runs), over the val split: s_6 mIoU, Sky IoU and the share of labels equal to fp32
PyTorch's; ``fake quant`` runs the u8s8 graph with ONNX Runtime's optimisations off, so its
Q/DQ pairs run as float ops (the graph's own accuracy, without integer kernels). Latency is the
network alone at the run size, batch 1, each variant in blocks that take turns (``timing``). ``saturating convs`` is
``lrnet.inference.export.saturating_convs``: how many convolutions can overflow int16 on a CPU without VNNI.

Toy run (a minute; the figures mean nothing):

    .venv/bin/python -m bench.int8_variants --data ../shared/data/camvid --val-images 2 \
        --calibration 4 --repeats 2 --out /tmp/int8.md
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench import measure
from lrnet.inference.backends import OnnxRuntimeBackend, OpenVinoBackend, cpu_class, describe


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="camvid-lite")
    parser.add_argument("--data", required=True, help="CamVid root (train calibrates, val scores)")
    parser.add_argument("--split", default="val")
    parser.add_argument("--val-images", type=int, help="score only the first N")
    parser.add_argument("--schemes", nargs="*", default=["u8s8", "u8s7", "u8u8", "s8s8"])
    parser.add_argument("--calibration", nargs="*", default=["64", "300+"])
    parser.add_argument("--no-nncf", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--out", type=Path, default=Path("docs/int8_variants.md"))
    parser.add_argument(
        "--keep", type=Path, help="keep the graphs in this folder and reuse those already there"
    )
    parser.add_argument("--no-score", action="store_true", help="time only")
    return parser.parse_args(argv)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class FakeQuant(OnnxRuntimeBackend):
    """ONNX Runtime with graph optimisations off: QuantizeLinear/DequantizeLinear run as float
    ops, so an int8 graph is computed without integer kernels."""

    def __init__(self, path: Path, threads: int):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        self.path, self.precision = path, "int8"
        self.session = onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
        self.input_name = self.session.get_inputs()[0].name


def make_graphs(loaded: Any, args: argparse.Namespace, work: Path) -> dict[str, Path]:
    """``"scheme @ calibration"`` -> int8 graph file, ORT's formats and NNCF's."""
    from lrnet.inference.graphs import CalibrationInputs, cached_onnx, quantize_int8

    fp32 = cached_onnx(loaded)
    graphs: dict[str, Path] = {}
    for calibration in args.calibration:
        count, varied = int(calibration.rstrip("+")), calibration.endswith("+")
        inputs = CalibrationInputs(loaded, args.data, count, varied)
        for scheme in args.schemes:
            key = f"{scheme} @ {calibration}"
            target = work / f"{scheme}-{count}{'v' if varied else ''}.onnx"
            if not target.is_file():
                log(f"quantising {key} ({len(inputs)} images)")
                quantize_int8(fp32, target, len(inputs), inputs.image, scheme=scheme)
            graphs[key] = target
        if not args.no_nncf:
            for fix in ("enable", "first_layer_only"):
                key = f"nncf overflow_fix={fix} @ {calibration}"
                target = work / f"nncf-{fix}-{calibration}.xml"
                if not target.is_file():
                    log(f"quantising {key}")
                    nncf_graph(fp32, inputs, fix, target)
                graphs[key] = target
    return graphs


def nncf_graph(fp32: Path, inputs: Any, fix: str, target: Path) -> Path:
    """NNCF's post-training quantisation of the fp32 graph in OpenVINO, with ``overflow_fix``."""
    import nncf
    import openvino
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix

    model = openvino.Core().read_model(str(fp32))
    dataset = nncf.Dataset(range(len(inputs)), inputs.image)
    quantised = nncf.quantize(
        model,
        dataset,
        subset_size=len(inputs),
        advanced_parameters=AdvancedQuantizationParameters(overflow_fix=OverflowFix(fix)),
    )
    openvino.save_model(quantised, str(target))
    return target


def runners(graphs: dict[str, Path], threads: int) -> dict[str, Any]:
    """``"graph | runtime"`` -> backend, for every graph on each runtime that reads it."""
    backends: dict[str, Any] = {}
    for key, path in graphs.items():
        backends[f"{key} | openvino"] = OpenVinoBackend(path, "int8", threads)
        if path.suffix == ".onnx":
            backends[f"{key} | onnxruntime"] = OnnxRuntimeBackend(path, "int8", threads)
            if key.startswith("u8s8 @"):
                backends[f"{key} | fake quant"] = FakeQuant(path, threads)
    return backends


def score(backends: dict[str, Any], loaded: Any, args: argparse.Namespace) -> dict[str, dict]:
    """s_6 mIoU, Sky IoU and agreement with torch fp32, through ``Predictor``."""
    from lrnet.data import build_dataset
    from lrnet.inference.predictor import Predictor
    from lrnet.metrics import ConfusionMatrix

    data = loaded.config.data
    dataset = build_dataset(data.dataset, args.data, args.split, **dict(data.options))
    count = len(dataset) if args.val_images is None else min(args.val_images, len(dataset))
    classes = loaded.config.model.num_classes
    predictors = {"torch fp32": Predictor(loaded.model, eval_size=data.eval_size)}
    for key, backend in backends.items():
        predictors[key] = Predictor(backend, eval_size=data.eval_size, num_classes=classes)
    matrices = {key: ConfusionMatrix(classes, data.ignore_index) for key in predictors}
    same = dict.fromkeys(predictors, 0)
    pixels = 0
    for index in range(count):
        image, mask = dataset[index]
        reference = None
        for key, predictor in predictors.items():
            labels = torch.from_numpy(predictor.predict(image).labels)
            reference = labels if reference is None else reference
            matrices[key].update(mask[None], labels[None])
            same[key] += int((labels == reference).sum())
        pixels += reference.numel()
        if (index + 1) % 20 == 0:
            log(f"scored {index + 1}/{count}")
    results = {}
    for key, matrix in matrices.items():
        metrics = matrix.compute()
        results[key] = {
            "miou": 100 * metrics["miou"],
            "sky_iou": 100 * metrics["per_class_iou"][0],
            "agreement": same[key] / pixels,
        }
    return results


def timing(backends: dict[str, Any], loaded: Any, args: argparse.Namespace) -> dict[str, float]:
    """Median ms of the network at the run size, batch 1, with torch fp32, timed in blocks that
    take turns (``bench.measure.time_in_blocks``)."""
    from lrnet.inference.backends import TorchBackend

    height, width = loaded.config.data.eval_size
    images = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(0))
    everyone = {"torch fp32": TorchBackend(loaded.model, "fp32"), **backends}
    calls = {key: (lambda b=b: b.run(images)) for key, b in everyone.items()}
    samples = measure.time_in_blocks(calls, 3, args.repeats)
    return {key: 1000 * float(np.median(s)) for key, s in samples.items()}


def format_table(rows: dict[str, dict[str, Any]], results: dict[str, Any]) -> str:
    reference = rows["torch fp32"]
    lines = [
        "| int8 graph @ calibration images | runtime | saturating convs | ms | speed-up vs torch "
        "fp32 | s_6 mIoU | Δ mIoU | Sky IoU | labels = torch fp32 |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key, row in rows.items():
        graph, _, runtime = key.partition(" | ")
        scores = "- | - | - | -"
        if "miou" in row:
            scores = (
                f"{row['miou']:.2f} | {row['miou'] - reference['miou']:+.2f} | "
                f"{row['sky_iou']:.1f} | {100 * row['agreement']:.2f}%"
            )
        lines.append(
            f"| {graph} | {runtime or '-'} | {row.get('saturating', '-')} | {row['ms']:.1f} | "
            f"{reference['ms'] / row['ms']:.2f}x | {scores} |"
        )
    machine = results["machine"]
    header = [
        f"`{results['command']}` ({results['started']}, {results['seconds']:.0f} s)",
        "",
        f"CPU: {machine['cpu']}; class `{results['cpu_class']}`; {machine['threads used']} "
        f"threads; runtimes: {', '.join(results['runtimes'])}",
        "",
    ]
    return "\n".join([*header, *lines, ""])


def main(argv: list[str] | None = None) -> int:
    from lrnet.inference.export import saturating_convs
    from lrnet.pretrained import load_model

    args = parse_args(argv)
    measure.set_threads(args.threads)
    start = time.perf_counter()
    loaded = load_model(args.model)
    with tempfile.TemporaryDirectory(prefix="lrnet-int8-variants-") as folder:
        work = args.keep or Path(folder)
        work.mkdir(parents=True, exist_ok=True)
        graphs = make_graphs(loaded, args, work)
        backends = runners(graphs, args.threads)
        rows: dict[str, dict[str, Any]] = {k: {} for k in ["torch fp32", *backends]}
        if not args.no_score:
            log(f"scoring {len(backends)} int8 runs and torch fp32 on {args.split}")
            rows = score(backends, loaded, args)
        log("timing")
        for key, ms in timing(backends, loaded, args).items():
            rows[key]["ms"] = ms
        for key in rows:
            graph = graphs.get(key.partition(" | ")[0])
            if graph is not None and graph.suffix == ".onnx":
                rows[key]["saturating"] = len(saturating_convs(graph))
        runtimes = sorted({describe(b) for b in backends.values()})
    results = {
        "command": " ".join(["python -m bench.int8_variants", *(argv or sys.argv[1:])]),
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "seconds": time.perf_counter() - start,
        "machine": measure.describe_machine(args.threads),
        "cpu_class": cpu_class(),
        "runtimes": runtimes,
        "rows": rows,
    }
    text = format_table(rows, results)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=2))
    log(f"wrote {args.out} and its .json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
