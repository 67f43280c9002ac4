"""How the benchmark measures: round-robin timing, peak memory in a fresh process, the machine.

Run as a module it is the memory worker (``python -m bench.measure VARIANT BATCH THREADS H W
[ONNX]``): it builds one variant, runs it once and prints its peak memory as JSON.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import onnx
import onnx.helper
import torch

from bench import variants  # imported before the worker's baseline: its libraries count in it
from lrnet.inference.backends import cpu_info


def set_threads(threads: int) -> None:
    """Pin PyTorch to ``threads`` intra-op threads and one inter-op thread."""
    torch.set_num_threads(threads)
    # Only settable once, before any inter-op work; a second call in one process raises.
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)


def time_round_robin(
    runners: Mapping[str, Callable[[], object]], warmup: int, repeats: int
) -> dict[str, list[float]]:
    """Seconds per call of each runner, ``repeats`` samples each after ``warmup`` calls.

    The runners take turns (one call of each per round) rather than running back to back, so a
    burst of load from another process slows all of them alike instead of one of them.
    """
    for _ in range(warmup):
        for run in runners.values():
            run()
    samples: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(repeats):
        for name, run in runners.items():
            start = time.perf_counter()
            run()
            samples[name].append(time.perf_counter() - start)
    return samples


def time_in_blocks(
    runners: Mapping[str, Callable[[], object]], warmup: int, repeats: int, rounds: int = 3
) -> dict[str, list[float]]:
    """Seconds per call of each runner: ``rounds`` rounds in which each runner in turn makes
    ``warmup`` untimed then ``repeats // rounds`` timed calls in a row.

    ONNX Runtime's threads spin for a while after a call, and so slow whatever runs next; with
    one call each in turns (``time_round_robin``) that cost falls on the other runtimes, within a
    block it falls on the warm-up calls. Taking turns by blocks still spreads load from other
    processes over all runners.
    """
    samples: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(rounds):
        for name, run in runners.items():
            block = time_round_robin({name: run}, warmup, max(1, repeats // rounds))
            samples[name] += block[name]
    return samples


MATMUL_SIZE = 4096


def matmul_runners(threads: int, size: int = MATMUL_SIZE) -> dict[str, Callable[[], object]]:
    """Two fp32 ``size``-square matmuls: PyTorch's (MKL) and ONNX Runtime's (MLAS).

    Both are timed because they differ: on AMD CPUs MKL's sgemm does not reach the AVX-512 rate
    that oneDNN's convolutions and MLAS do, so ``torch.mm`` alone would understate the peak.
    """
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator)
    b = torch.randn(size, size, generator=generator)
    square = [size, size]
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("MatMul", ["a", "b"], ["c"])],
        "matmul",
        [onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, square) for n in "ab"],
        [onnx.helper.make_tensor_value_info("c", onnx.TensorProto.FLOAT, square)],
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    session = variants.onnx_session(model.SerializeToString(), threads)
    feed = {"a": a.numpy(), "b": b.numpy()}
    return {
        "torch.mm": lambda: torch.mm(a, b),
        "onnxruntime MatMul": lambda: session.run(None, feed),
    }


def matmul_gflops(seconds: list[float], size: int = MATMUL_SIZE) -> list[float]:
    """GFLOP/s of ``size``-square matmuls that took ``seconds``."""
    return [2 * size**3 / s / 1e9 for s in seconds]


def physical_cores() -> int:
    """Distinct (socket, core) pairs in /proc/cpuinfo; the logical CPU count where unreadable."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return os.cpu_count() or 1
    cores: set[tuple[str, str]] = set()
    socket = core = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "physical id":
            socket = value
        elif key == "core id":
            core = value
        elif not line.strip() and core:
            cores.add((socket, core))
            socket = core = ""
    if core:
        cores.add((socket, core))
    return len(cores) or os.cpu_count() or 1


def describe_machine(threads: int) -> dict[str, str]:
    """CPU, cores, memory and library versions, for the report."""
    info = cpu_info()
    wanted = (
        "avx2",
        "fma",
        "avx512f",
        "avx512_vnni",
        "avx_vnni",
        "avx512_bf16",
        "amx_tile",
        "amx_int8",
    )
    info["flags"] = " ".join(f for f in info.get("flags", "").split() if f in wanted)
    info.setdefault("model name", platform.processor() or "unknown")
    import onnxruntime
    import segmentation_models_pytorch
    import torchvision

    return {
        "cpu": f"{info.get('model name', '?')} (family {info.get('cpu family', '?')}, "
        f"model {info.get('model', '?')}; {info.get('flags', '')})",
        "physical cores": str(physical_cores()),
        "logical cpus": str(os.cpu_count()),
        "memory": f"{_meminfo_gib()} GiB",
        "threads used": str(threads),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "onnxruntime": onnxruntime.__version__,
        "segmentation_models_pytorch": segmentation_models_pytorch.__version__,
        "platform": platform.platform(),
    }


def _meminfo_gib() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 2**20:.1f}"
    except OSError:
        pass
    return "?"


def _status_kib(field: str) -> int:
    """A ``/proc/self/status`` size field (``VmRSS``, ``VmHWM``) in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak_rss() -> bool:
    """Reset this process's VmHWM to its current RSS (Linux >= 4.0); False where not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_memory_mib(
    variant: str, batch: int, threads: int, height: int, width: int, onnx_path: Path | None
) -> dict[str, float | bool]:
    """Run the memory worker for one variant and batch size in a fresh Python process."""
    command = [sys.executable, "-m", "bench.measure", variant, str(batch), str(threads)]
    command += [str(height), str(width), str(onnx_path or "")]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    root = Path(__file__).resolve().parents[1]  # where `bench` is importable from
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=root, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"memory worker for {variant} failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def memory_worker(argv: list[str]) -> dict[str, float | bool]:
    """Peak RSS of one inference of one variant over the RSS right after the imports.

    VmHWM is read rather than ``getrusage().ru_maxrss``: on Linux a child's ru_maxrss starts at
    the parent's peak (it is carried across exec from the vfork'ed address space), so a fresh
    process would report the benchmark parent's size. After the model is built the peak is
    reset to the current RSS, so one-off build costs (the copy made when fusing BatchNorm) do not
    count, while the weights, activations and runtime workspaces do.
    """
    name, batch, threads, height, width = argv[0], *map(int, argv[1:5])
    onnx_path = Path(argv[5]) if len(argv) > 5 and argv[5] else None
    set_threads(threads)
    baseline_kib = _status_kib("VmRSS")
    variant = variants.VARIANTS[name]
    network = None if variant.onnxruntime else variants.build_network(variant.network)
    images = torch.rand(batch, 3, height, width, generator=torch.Generator().manual_seed(0))
    run = variants.make_runner(variant, network, images, onnx_path, threads)
    del network  # the runner holds its own copy
    reset = _reset_peak_rss()
    run()
    return {
        "baseline_mib": baseline_kib / 1024,
        "peak_mib": (_status_kib("VmHWM") - baseline_kib) / 1024,
        "peak_reset_after_build": reset,
    }


def summarize_samples(samples: list[float]) -> dict[str, float]:
    """Median, minimum and maximum of timing samples."""
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples)}


if __name__ == "__main__":
    print(json.dumps(memory_worker(sys.argv[1:])))
