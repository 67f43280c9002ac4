"""Inference backends behind one small interface (``Backend``): PyTorch, ONNX Runtime, OpenVINO.

Resizing and padding live in ``Predictor`` only, so every backend sees the same pixels.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import warnings
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from lrnet._errors import LrnetError
from lrnet.data._io import to_numpy

if TYPE_CHECKING:  # torch is imported by TorchBackend only: the other backends run without it
    import torch
    from torch import Tensor, nn

BACKENDS = ("torch", "onnxruntime", "openvino")
PRECISIONS = ("fp32", "bf16", "int8")
# What each backend can run. bf16 is PyTorch autocast; int8 is the statically quantised ONNX
# graph (QDQ, per-channel weights) that ``lrnet export --int8`` writes, run by ORT or OpenVINO.
SUPPORTED: dict[str, tuple[str, ...]] = {
    "torch": ("fp32", "bf16"),
    "onnxruntime": ("fp32", "int8"),
    "openvino": ("fp32", "int8"),
}
INSTALL_HINT = {
    name: f"pip install {name} (a dependency of lrnet: reinstall it)"
    for name in ("onnxruntime", "openvino")
}

# The CPU flags that change how int8 and bf16 compute (and so whether their labels hold).
KERNEL_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_int8",
    "amx_bf16",
)


class Backend(Protocol):
    """What ``Predictor`` needs from a backend: its ``name`` (one of ``BACKENDS``), its
    ``precision`` (one of ``PRECISIONS``) and ``run``."""

    name: str
    precision: str

    def run(self, images: np.ndarray) -> list[np.ndarray]:
        """Stage logits of ``(N, 3, h, w)`` float32 RGB images in [0, 1] (h, w >= 32): one
        ``(N, C, h_k, w_k)`` float32 array per stage, coarse to fine (s_1 at stride 32 ... s_6 at
        stride 1 for LRN; a single-stage model returns one)."""
        ...


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX512-BF16 or AMX). Elsewhere oneDNN emulates
    it, slower than fp32 (1.4x on an AVX512-VNNI Xeon: docs/results.md)."""
    import torch

    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    found = [getattr(torch.cpu, p) for p in probes if hasattr(torch.cpu, p)]
    if found:
        return any(bool(probe()) for probe in found)
    flags = cpu_info().get("flags", "").split()  # older torch: the kernel's CPU flags
    return "avx512_bf16" in flags or "amx_bf16" in flags


def cpu_info() -> dict[str, str]:
    """The first CPU's fields in /proc/cpuinfo (``model name``, ``flags`` ...); ``{}`` off Linux."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return {}
    info: dict[str, str] = {}
    for line in lines:
        key, _, value = line.partition(":")
        info.setdefault(key.strip(), value.strip())
    return info


def cpu_flags() -> tuple[str, ...]:
    """The ``KERNEL_FLAGS`` this CPU has, as /proc/cpuinfo lists them (``()`` off Linux)."""
    flags = set(cpu_info().get("flags", "").split())
    return tuple(f for f in KERNEL_FLAGS if f in flags)


def cpu_class(flags: Sequence[str] | None = None) -> str:
    """The kind of x86 CPU as int8 sees it: ``"vnni"``, ``"avx512"``, ``"avx2"`` or ``"other"``
    (docs/deploy.md). Zoo entries' ``fast_paths`` are measured per class."""
    flags = cpu_flags() if flags is None else tuple(flags)
    if {"avx512_vnni", "avx_vnni", "amx_int8"} & set(flags):
        return "vnni"
    if "avx512f" in flags:
        return "avx512"
    return "avx2" if "avx2" in flags else "other"


def has_native_bf16(device: torch.device | str) -> bool:
    """Native bf16 on ``device``: ``cpu_has_native_bf16``, or a CUDA GPU that supports it."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    return device.type == "cpu" and cpu_has_native_bf16()


def gpu_driver_loaded() -> bool:
    """Whether an NVIDIA or AMD GPU driver is loaded: without one, ``--device auto`` is the CPU
    and is told so without importing torch to ask."""
    return Path("/proc/driver/nvidia/version").exists() or Path("/dev/kfd").exists()


def is_available(name: str) -> bool:
    """Whether the backend's runtime is installed (PyTorch always is)."""
    return name == "torch" or importlib.util.find_spec(name) is not None


class TorchBackend:
    """PyTorch eager: BatchNorm folded into the convs, channels-last, optional bf16 autocast.

    Args:
        model: returns a tuple of stage logits; not modified (folding makes an eval-only copy).
        precision: ``"fp32"`` or ``"bf16"`` (autocast; fast only where ``has_native_bf16``).
        fuse: fold BatchNorm and use channels-last (docs/benchmarks.md: 1.6x at batch 1, outputs
            equal up to float rounding); ``False`` runs the model as trained.
    """

    name = "torch"

    def __init__(
        self,
        model: nn.Module,
        precision: str = "fp32",
        device: torch.device | str = "cpu",
        *,
        fuse: bool = True,
    ):
        import torch

        from lrnet.models.fuse import fuse_conv_bn

        if precision not in SUPPORTED["torch"]:
            raise LrnetError(f"the torch backend runs fp32 or bf16, not {precision}")
        self.precision = precision
        self.device = torch.device(device)
        self.memory_format = torch.channels_last if fuse else torch.contiguous_format
        model = fuse_conv_bn(model) if fuse else model.eval()
        self.model = model.to(self.device).to(memory_format=self.memory_format)
        if precision == "bf16" and not has_native_bf16(self.device):
            warnings.warn(
                f"bf16 on {self.device} without native bf16 (no AVX512-BF16 / AMX) is emulated "
                "and slower than fp32",
                stacklevel=2,
            )

    def run(self, images: np.ndarray | Tensor) -> list[np.ndarray]:
        import torch

        batch = torch.as_tensor(images).to(self.device, torch.float32)
        batch = batch.contiguous(memory_format=self.memory_format)
        bf16 = self.precision == "bf16"
        with (
            torch.inference_mode(),
            torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16),
        ):
            stages = self.model(batch)
        return [s.float().cpu().numpy() for s in stages]


def _threads(threads: int | None) -> int:
    """``threads``, else one per physical core this process may use, as PyTorch's default
    (hyper-threads share a core's vector units)."""
    if threads:
        return int(threads)
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info = cpu_info()
    siblings, cores = info.get("siblings", ""), info.get("cpu cores", "")
    if siblings.isdigit() and cores.isdigit() and int(siblings) > 0 and int(cores) > 0:
        return max(1, (usable or 1) // max(1, int(siblings) // int(cores)))
    return usable or 1


def _runtime(name: str) -> Any:
    """The ``onnxruntime`` or ``openvino`` module, or an error saying how to install it."""
    try:
        return importlib.import_module(name)
    except ImportError:
        raise LrnetError(f"the {name} backend needs {name}: {INSTALL_HINT[name]}") from None


def _batch(images: np.ndarray | Tensor) -> np.ndarray:
    """A batch given as numpy or as a (CPU or GPU) tensor, as contiguous float32 numpy."""
    return np.ascontiguousarray(to_numpy(images), dtype=np.float32)


class OnnxRuntimeBackend:
    """ONNX Runtime (CPU) on an all-stages ``.onnx`` file holding ``precision``: fp32, or the int8
    QDQ graph (``graphs.cached_onnx`` / ``cached_int8``); ``threads`` default to one per core."""

    name = "onnxruntime"

    def __init__(self, path: str | Path, precision: str = "fp32", threads: int | None = None):
        onnxruntime = _runtime("onnxruntime")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = _threads(threads)
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # no warnings about unused initialisers etc.
        self.path, self.precision = Path(path), precision
        try:
            self.session = onnxruntime.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # InvalidProtobuf, NoSuchFile, InvalidGraph ...
            raise unreadable_graph(self.path, "ONNX Runtime", exc) from None
        self.input_name = self.session.get_inputs()[0].name

    def run(self, images: np.ndarray | Tensor) -> list[np.ndarray]:
        outputs = self.session.run(None, {self.input_name: _batch(images)})
        return [np.asarray(o, dtype=np.float32) for o in outputs]


class OpenVinoBackend:
    """OpenVINO (CPU) on the same ``.onnx`` files as ONNX Runtime (it reads QDQ int8 natively).
    fp32 is held to fp32: OpenVINO would otherwise pick bf16 on CPUs that have it."""

    name = "openvino"

    def __init__(self, path: str | Path, precision: str = "fp32", threads: int | None = None):
        openvino = _runtime("openvino")
        self.path, self.precision = Path(path), precision
        config: dict[str, Any] = {
            "INFERENCE_NUM_THREADS": _threads(threads),
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": "f32",
        }
        try:
            self.compiled = openvino.Core().compile_model(str(path), "CPU", config)
        except Exception as exc:  # RuntimeError, with the C++ stack in its message
            raise unreadable_graph(self.path, "OpenVINO", exc) from None
        self.request = self.compiled.create_infer_request()
        self.num_outputs = len(self.compiled.outputs)

    def run(self, images: np.ndarray | Tensor) -> list[np.ndarray]:
        self.request.infer({0: _batch(images)})
        # copy: the request's output buffers are reused by the next call
        return [
            np.array(self.request.get_output_tensor(i).data, dtype=np.float32)
            for i in range(self.num_outputs)
        ]


def unreadable_graph(path: Path, runtime: str, exc: Exception) -> LrnetError:
    """The one-line error for an ``.onnx`` file ``runtime`` could not load, with its last word."""
    if not path.is_file():
        return LrnetError(f"{path} is not a file; give an .onnx graph (lrnet export writes one)")
    said = [line.strip() for line in str(exc).splitlines() if line.strip()]
    reason = f"{type(exc).__name__}: {said[-1][-160:]}" if said else type(exc).__name__
    return LrnetError(
        f"{path} cannot be loaded by {runtime} ({reason}); it is cut short or not an ONNX graph: "
        "export it again (a cached graph: delete it, and it is made again)"
    )


def stage_module(backend: Backend) -> nn.Module:
    """A backend seen as a model for ``evaluate``: images in, the tuple of stage logits out, on
    the input's device (no parameters; moving it is a no-op)."""
    import torch
    from torch import nn

    class StageModule(nn.Module):
        def forward(self, images: Tensor) -> tuple[Tensor, ...]:
            stages = backend.run(images.float().cpu().numpy())
            return tuple(torch.from_numpy(s).to(images.device) for s in stages)

    return StageModule()


def describe(backend: Backend) -> str:
    """The backend, its runtime's version and its precision: ``"onnxruntime 1.32.0 int8"``."""
    try:
        version = package_version(backend.name)
    except PackageNotFoundError:
        version = "?"
    return f"{backend.name} {version} {backend.precision}"


__all__: Sequence[str]
