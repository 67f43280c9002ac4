"""Speed, memory and cost of LRN beside SegNet, SMP's Unet and torchvision's models, on CPU.

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python -m bench.benchmark                     # full run, writes docs/benchmarks_raw.*
    .venv/bin/python -m bench.benchmark --models lrn lrn-ort --train-models lrn --repeats 2 1

Everything is measured in one run on the same input (360 x 480 RGB, random weights, 11 classes):
inference latency and throughput at batch 1 and 8, peak memory (fresh process per variant and
batch), parameters and GFLOPs, achieved GFLOP/s against this machine's matmul peak, and training
throughput (forward + loss + backward + SGD step). See docs/benchmarks.md for the method.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from bench import measure, variants
from lrnet.inference.export import export_onnx
from lrnet.summary import summarize


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--models",
        nargs="+",
        default=list(variants.VARIANTS),
        choices=list(variants.VARIANTS),
        metavar="VARIANT",
        help=f"inference variants to measure (default all: {', '.join(variants.VARIANTS)})",
    )
    parser.add_argument(
        "--train-models",
        nargs="*",
        default=list(variants.TRAINED),
        choices=list(variants.TRAINED),
        help="networks whose training step is timed (none to skip)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=measure.physical_cores(),
        help="intra-op threads for PyTorch and ONNX Runtime (default: physical cores)",
    )
    parser.add_argument("--size", type=int, nargs=2, default=[360, 480], metavar=("H", "W"))
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument(
        "--repeats",
        type=int,
        nargs="+",
        default=[5, 3],
        help="timed runs per variant, one number per batch size (the median is reported)",
    )
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs before timing")
    parser.add_argument("--train-batch", type=int, default=4)
    parser.add_argument("--train-repeats", type=int, default=3)
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory processes")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("docs/benchmarks_raw.md"),
        help="Markdown report; the JSON results go next to it (.json)",
    )
    args = parser.parse_args(argv)
    if len(args.repeats) != len(args.batch_sizes):
        parser.error(
            f"--repeats needs one count per batch size ({len(args.batch_sizes)}), "
            f"got {len(args.repeats)}"
        )
    return args


def log(message: str, start: float) -> None:
    print(f"[{time.perf_counter() - start:6.0f}s] {message}", file=sys.stderr, flush=True)


def count_costs(networks: dict[str, torch.nn.Module], height: int, width: int) -> dict[str, Any]:
    """Parameters and GFLOPs per image of each network (FlopCounterMode, multiply-add = 2)."""
    costs = {}
    for name, network in networks.items():
        s = summarize(network, height, width, name)
        costs[name] = {"params": s.params, "gflops": s.gflops}
    return costs


def check_parity(
    runners: dict[str, Any], networks: dict[str, torch.nn.Module], images: torch.Tensor
) -> dict[str, float]:
    """Max |variant - eager fp32| over max |eager fp32| of the final stage, per variant."""
    references: dict[str, torch.Tensor] = {}
    errors = {}
    for name, run in runners.items():
        network = variants.VARIANTS[name].network
        if network not in references:
            with torch.no_grad():
                references[network] = networks[network](images)[-1]
        reference = references[network]
        errors[name] = float((run() - reference).abs().max() / reference.abs().max())
    return errors


def time_inference(
    args: argparse.Namespace,
    networks: dict[str, torch.nn.Module],
    onnx_path: Path | None,
    start: float,
) -> tuple[dict[int, dict[str, list[float]]], dict[str, list[float]], dict[str, float]]:
    """Latency samples per batch size and variant, matmul GFLOP/s samples, and batch-1 parity.

    The two reference matmuls take their turn in every round beside the models, so the peak they
    give has been through the same load as the models it is compared with.
    """
    height, width = args.size
    samples: dict[int, dict[str, list[float]]] = {}
    peak: dict[str, list[float]] = {}
    parity: dict[str, float] = {}
    matmuls = measure.matmul_runners(args.threads)
    for batch, repeats in zip(args.batch_sizes, args.repeats, strict=True):
        images = torch.rand(batch, 3, height, width, generator=torch.Generator().manual_seed(0))
        runners = {
            name: variants.make_runner(
                variants.VARIANTS[name],
                networks[variants.VARIANTS[name].network],
                images,
                onnx_path,
                args.threads,
            )
            for name in args.models
        }
        if not parity:
            parity = check_parity(runners, networks, images)
        log(f"timing batch {batch}: {args.warmup} warm-up + {repeats} rounds", start)
        timed = measure.time_round_robin({**runners, **matmuls}, args.warmup, repeats)
        for name in matmuls:
            peak.setdefault(name, []).extend(measure.matmul_gflops(timed.pop(name)))
        samples[batch] = timed
        del runners  # free this batch size's model copies before the next
    return samples, peak, parity


def time_training(
    args: argparse.Namespace, networks: dict[str, torch.nn.Module]
) -> dict[str, list[float]]:
    height, width = args.size
    steps = {
        name: variants.make_train_step(networks[name], args.train_batch, height, width)
        for name in args.train_models
    }
    return measure.time_round_robin(steps, args.warmup, args.train_repeats)


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """Measure everything the arguments ask for; the results as one JSON-able dict."""
    start = time.perf_counter()
    height, width = args.size
    measure.set_threads(args.threads)
    load_before = os.getloadavg()
    machine = measure.describe_machine(args.threads)
    needed = {variants.VARIANTS[name].network for name in args.models} | set(args.train_models)
    networks = {name: variants.build_network(name) for name in variants.NETWORKS if name in needed}
    log(f"built {', '.join(networks)}; counting FLOPs", start)
    costs = count_costs(networks, height, width)

    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = None
        export_seconds = None
        if any(variants.VARIANTS[name].onnxruntime for name in args.models):
            onnx_path = Path(tmp) / "lrn.onnx"
            t = time.perf_counter()
            export_onnx(networks["lrn"], onnx_path, example_size=(height, width))  # = lrnet export
            export_seconds = time.perf_counter() - t
            log(f"exported LRN to ONNX in {export_seconds:.1f}s", start)

        memory: dict[int, dict[str, Any]] = {}
        if not args.no_memory:
            for batch in args.batch_sizes:
                memory[batch] = {}
                for name in args.models:
                    log(f"peak memory: {name}, batch {batch}", start)
                    memory[batch][name] = measure.peak_memory_mib(
                        name, batch, args.threads, height, width, onnx_path
                    )

        log("inference timing", start)
        latency, peak, parity = time_inference(args, networks, onnx_path, start)

    training = {}
    if args.train_models:
        log(f"training steps, batch {args.train_batch}", start)
        training = time_training(args, networks)
    log("done", start)
    return {
        "command": " ".join(["python", "-m", "bench.benchmark", *sys.argv[1:]]),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "wall_seconds": time.perf_counter() - start,
        "machine": machine,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "size": [height, width],
        "threads": args.threads,
        "warmup": args.warmup,
        "repeats": dict(zip(args.batch_sizes, args.repeats, strict=True)),
        "matmul_size": measure.MATMUL_SIZE,
        "matmul_gflops": peak,
        "onnx_export_seconds": export_seconds,
        "costs": costs,
        "variants": {
            name: {
                "network": variants.VARIANTS[name].network,
                "recipe": variants.VARIANTS[name].recipe,
            }
            for name in args.models
        },
        "parity_batch1": parity,
        "latency_seconds": latency,
        "memory": memory,
        "train_batch": args.train_batch,
        "train_step_seconds": training,
    }


def format_report(results: dict[str, Any]) -> str:
    """The results as Markdown: machine, one table per batch size, the training table."""
    lines = [
        "# Benchmark results (raw)",
        "",
        f"Command: `{results['command']}`  ",
        f"Date: {results['date']}; wall time {results['wall_seconds'] / 60:.1f} min  ",
        "Input: {}x{} RGB, random weights, 11 classes; warm-up {} run(s), timed rounds {}".format(
            *results["size"],
            results["warmup"],
            ", ".join(f"batch {b}: {r}" for b, r in results["repeats"].items()),
        ),
        "",
        "| machine | |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v} |" for k, v in results["machine"].items()]
    before = ", ".join(f"{x:.2f}" for x in results["load_average_before"])
    after = ", ".join(f"{x:.2f}" for x in results["load_average_after"])
    lines.append(f"| load average (1/5/15 min) | before {before}; after {after} |")
    medians = {}
    for library, gflops in results["matmul_gflops"].items():
        s = measure.summarize_samples(gflops)
        medians[library] = s["median"]
        lines.append(
            f"| fp32 {results['matmul_size']}² matmul, {library}, {results['threads']} threads "
            f"| median {s['median']:.0f} GFLOP/s (range {s['min']:.0f}–{s['max']:.0f}) |"
        )
    peak = max(medians.values())
    lines.append(
        f"| peak used for % of peak | {peak:.0f} GFLOP/s ({max(medians, key=lambda library: medians[library])}) |"
    )
    if results["onnx_export_seconds"] is not None:
        lines.append(f"| LRN ONNX export (dynamo) | {results['onnx_export_seconds']:.1f} s |")

    costs, parity = results["costs"], results["parity_batch1"]
    for batch, by_variant in results["latency_seconds"].items():
        batch = int(batch)
        memory = results["memory"].get(batch, {})
        reference = statistics.median(by_variant["lrn"]) if "lrn" in by_variant else None
        lines += [
            "",
            f"## Inference, batch {batch}",
            "",
            "| variant | recipe | params (M) | GFLOPs/image | latency ms, median (min–max) "
            "| images/s | speed vs lrn | peak memory MiB | GFLOP/s | % of matmul peak "
            "| max rel. error vs eager fp32 |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for name, seconds in by_variant.items():
            info = results["variants"][name]
            cost = costs[info["network"]]
            s = measure.summarize_samples(seconds)
            achieved = cost["gflops"] * batch / s["median"]
            speed = f"{reference / s['median']:.2f}×" if reference else "–"
            mem = f"{memory[name]['peak_mib']:.0f}" if name in memory else "–"
            lines.append(
                f"| {name} | {info['recipe']} | {cost['params'] / 1e6:.1f} | {cost['gflops']:.1f} "
                f"| {s['median'] * 1e3:.0f} ({s['min'] * 1e3:.0f}–{s['max'] * 1e3:.0f}) "
                f"| {batch / s['median']:.2f} | {speed} | {mem} "
                f"| {achieved:.0f} | {100 * achieved / peak:.0f}% | {parity.get(name, 0):.1e} |"
            )

    if results["train_step_seconds"]:
        batch = results["train_batch"]
        steps = results["train_step_seconds"]
        reference = statistics.median(steps["lrn"]) if "lrn" in steps else None
        lines += [
            "",
            f"## Training, batch {batch} (forward + StageLoss + backward + SGD step, fp32, NCHW)",
            "",
            "| model | step ms, median (min–max) | images/s | speed vs lrn |",
            "|---|---:|---:|---:|",
        ]
        for name, seconds in steps.items():
            s = measure.summarize_samples(seconds)
            speed = f"{reference / s['median']:.2f}×" if reference else "–"
            lines.append(
                f"| {name} | {s['median'] * 1e3:.0f} ({s['min'] * 1e3:.0f}–{s['max'] * 1e3:.0f}) "
                f"| {batch / s['median']:.2f} | {speed} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = run_benchmark(args)
    report = format_report(results)
    print(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
