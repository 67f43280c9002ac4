"""Inference backends behind one small interface: PyTorch, ONNX Runtime and OpenVINO.

A backend loads a model, runs one batch of ``(N, 3, h, w)`` float32 RGB images in [0, 1] (a numpy
array) and returns every stage's logits as numpy arrays, coarse to fine, and names itself
(``name``, ``precision``). Only ``TorchBackend`` loads torch: ONNX Runtime and OpenVINO run without
it. Pre- and
post-processing (resizing, padding, labels at the input's size) live in
``lrnet.inference.predictor.Predictor`` only, so every backend sees the same pixels and gives comparable labels.
"""

from __future__ import annotations

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
    "onnxruntime": "pip install onnxruntime (a dependency of lrnet: reinstall it)",
    "openvino": "pip install openvino (a dependency of lrnet: reinstall it)",
}


class Backend(Protocol):
    """What ``Predictor`` needs from a backend.

    Attributes:
        name: ``"torch"``, ``"onnxruntime"`` or ``"openvino"``.
        precision: ``"fp32"``, ``"bf16"`` or ``"int8"``.
    """

    name: str
    precision: str

    def run(self, images: np.ndarray) -> list[np.ndarray]:
        """Stage logits for a batch.

        Args:
            images: ``(N, 3, h, w)`` float32 RGB in [0, 1] (h, w >= 32).

        Returns:
            One ``(N, C, h_k, w_k)`` float32 array per stage, coarse to fine (s_1 at stride
            32 ... s_6 at stride 1 for LRN; a single-stage model returns one).
        """
        ...


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX512-BF16 or AMX), so autocast pays off.

    Elsewhere oneDNN emulates bf16 and it is slower than fp32 (docs/results.md measured 1.4x
    slower on an AVX512-VNNI Xeon without AVX512-BF16).
    """
    import torch

    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    found = [getattr(torch.cpu, p) for p in probes if hasattr(torch.cpu, p)]
    if found:
        return any(bool(probe()) for probe in found)
    flags = cpu_info().get("flags", "").split()  # older torch: the kernel's CPU flags
    return "avx512_bf16" in flags or "amx_bf16" in flags


def cpu_info() -> dict[str, str]:
    """The first CPU's fields in /proc/cpuinfo (``model name``, ``flags`` ...); ``{}`` where
    there is none (not Linux)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return {}
    info: dict[str, str] = {}
    for line in lines:
        key, _, value = line.partition(":")
        info.setdefault(key.strip(), value.strip())
    return info


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


def cpu_flags() -> tuple[str, ...]:
    """The ``KERNEL_FLAGS`` this CPU has, as /proc/cpuinfo lists them (``()`` off Linux)."""
    flags = set(cpu_info().get("flags", "").split())
    return tuple(f for f in KERNEL_FLAGS if f in flags)


def cpu_class(flags: Sequence[str] | None = None) -> str:
    """The kind of x86 CPU as int8 sees it: ``"vnni"`` (AVX512-VNNI, AVX-VNNI or AMX: int8 dot
    products in one instruction, no saturation), ``"avx512"`` (AVX-512 without VNNI), ``"avx2"``
    or ``"other"``. Zoo entries' ``fast_paths`` are measured per class."""
    flags = cpu_flags() if flags is None else tuple(flags)
    if {"avx512_vnni", "avx_vnni", "amx_int8"} & set(flags):
        return "vnni"
    if "avx512f" in flags:
        return "avx512"
    return "avx2" if "avx2" in flags else "other"


def has_native_bf16(device: torch.device | str) -> bool:
    """Native bf16 on ``device``: the CPU test above, or a CUDA GPU that supports it."""
    import torch

    device = torch.device(device)
    if device.type == "cpu":
        return cpu_has_native_bf16()
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    return False


def gpu_driver_loaded() -> bool:
    """Whether an NVIDIA or AMD GPU driver is loaded: without one, ``--device auto`` is the CPU
    and is told so without importing torch to ask."""
    return Path("/proc/driver/nvidia/version").exists() or Path("/dev/kfd").exists()


def is_available(name: str) -> bool:
    """Whether the backend's runtime is installed (PyTorch always is)."""
    if name == "torch":
        return True
    return importlib.util.find_spec(name) is not None


class TorchBackend:
    """PyTorch eager: BatchNorm folded into the convs, channels-last, optional bf16 autocast.

    Args:
        model: returns a tuple of stage logits for ``(N, 3, h, w)`` images in [0, 1]; not
            modified (folding makes an eval-only copy).
        precision: ``"fp32"`` or ``"bf16"`` (autocast; fast only where ``has_native_bf16``).
        device: where the model runs.
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


def default_threads() -> int:
    """The ONNX runtimes' intra-op threads when none are given: one per physical core this
    process may use, as PyTorch's default (hyper-threads share a core's vector units)."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    usable = usable or 1
    siblings = cpu_info().get("siblings"), cpu_info().get("cpu cores")
    if all(v and v.isdigit() and int(v) > 0 for v in siblings):
        per_core = max(1, int(siblings[0] or 1) // int(siblings[1] or 1))
        return max(1, usable // per_core)
    return usable


def _threads(threads: int | None) -> int:
    """Intra-op threads for the ONNX runtimes: ``threads``, else ``default_threads()``."""
    return int(threads) if threads else default_threads()


class OnnxRuntimeBackend:
    """ONNX Runtime (CPU) on an all-stages ``.onnx`` file: fp32, or the int8 QDQ graph.

    Args:
        path: the ``.onnx`` file (``lrnet.inference.graphs.cached_onnx`` / ``cached_int8``).
        precision: what the file holds, ``"fp32"`` or ``"int8"``.
        threads: intra-op threads (default: ``default_threads()``).
    """

    name = "onnxruntime"

    def __init__(self, path: str | Path, precision: str = "fp32", threads: int | None = None):
        try:
            import onnxruntime
        except ImportError:
            raise LrnetError(
                f"the onnxruntime backend needs onnxruntime: {INSTALL_HINT['onnxruntime']}"
            ) from None
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = _threads(threads)
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # no warnings about unused initialisers etc.
        self.path = Path(path)
        self.precision = precision
        try:
            self.session = onnxruntime.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # InvalidProtobuf, NoSuchFile, InvalidGraph ...
            raise unreadable_graph(self.path, "ONNX Runtime", exc) from None
        self.input_name = self.session.get_inputs()[0].name

    def run(self, images: np.ndarray | Tensor) -> list[np.ndarray]:
        array = np.ascontiguousarray(_numpy(images), dtype=np.float32)
        outputs = self.session.run(None, {self.input_name: array})
        return [np.asarray(o, dtype=np.float32) for o in outputs]


class OpenVinoBackend:
    """OpenVINO (CPU) on the same ``.onnx`` files as ONNX Runtime (it reads QDQ int8 natively).

    Args:
        path: the ``.onnx`` file.
        precision: what the file holds, ``"fp32"`` or ``"int8"``; fp32 is held to fp32 (OpenVINO
            would otherwise pick bf16 on CPUs that have it, which is another precision).
        threads: inference threads (default: ``default_threads()``).
    """

    name = "openvino"

    def __init__(self, path: str | Path, precision: str = "fp32", threads: int | None = None):
        try:
            import openvino
        except ImportError:
            raise LrnetError(
                f"the openvino backend needs openvino: {INSTALL_HINT['openvino']}"
            ) from None
        self.path = Path(path)
        self.precision = precision
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
        array = np.ascontiguousarray(_numpy(images), dtype=np.float32)
        self.request.infer({0: array})
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


def _numpy(images: np.ndarray | Tensor) -> np.ndarray:
    """The array of a batch given as numpy or as a (CPU or GPU) tensor."""
    detach = getattr(images, "detach", None)
    return detach().cpu().numpy() if detach is not None else np.asarray(images)


def stage_module(backend: Backend) -> nn.Module:
    """A backend seen as a model (images in, the tuple of stage logits out), for ``evaluate``.

    The module has no parameters; moving it is a no-op, and it returns the stages on the device
    of its input.
    """
    import torch
    from torch import nn

    class StageModule(nn.Module):
        def forward(self, images: Tensor) -> tuple[Tensor, ...]:
            stages = backend.run(images.float().cpu().numpy())
            return tuple(torch.from_numpy(s).to(images.device) for s in stages)

    return StageModule()


def describe(backend: Backend) -> str:
    """``"onnxruntime int8"``, with the runtime's version."""
    try:
        version = package_version(backend.name)
    except PackageNotFoundError:
        version = "?"
    return f"{backend.name} {version} {backend.precision}"


__all__: Sequence[str] = [
    "BACKENDS",
    "PRECISIONS",
    "SUPPORTED",
    "Backend",
    "OnnxRuntimeBackend",
    "OpenVinoBackend",
    "TorchBackend",
    "cpu_class",
    "cpu_flags",
    "cpu_has_native_bf16",
    "describe",
    "has_native_bf16",
    "is_available",
    "stage_module",
]
