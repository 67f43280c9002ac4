"""The choice of backend and precision: what ``auto`` runs for a model on this machine, and why.

The rules are in docs/deploy.md ("Which backend runs"); each path skipped gets a note that
``Predictor.notes`` keeps.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lrnet import zoo
from lrnet._errors import ArgumentError, ArgumentTypeError, LrnetError
from lrnet.inference import backends, verify
from lrnet.inference.backends import BACKENDS, PRECISIONS, SUPPORTED, Backend, TorchBackend
from lrnet.inference.graphs import cached_int8, cached_onnx, int8_record, weights_fingerprint

if TYPE_CHECKING:
    import torch

    from lrnet.pretrained import LoadedModel

# Models not in the zoo (whose entries carry ``fast_paths`` per kind of CPU) get the fastest
# backend that is exact in fp32.
DEFAULT_FAST_PATHS: tuple[tuple[str, str], ...] = (("onnxruntime", "fp32"), ("torch", "fp32"))

AUTO_TOLERANCE = 0.3  # mIoU points

# A model without a val measurement runs int8 under `auto` once its int8 graph agrees with fp32
# on this share of its first 8 calibration images' labels. For scale: camvid-lite's int8 graph
# agrees on 99.42% of CamVid val pixels and scores 0.1 mIoU higher.
AUTO_AGREEMENT = 0.99

INT8_PATHS: tuple[tuple[str, str], ...] = (("openvino", "int8"), ("onnxruntime", "int8"))

# The most intra-op threads a backend is given: ONNX Runtime died with SIGSEGV at 100000.
MAX_THREADS = 256


def check_threads(threads: Any, name: str = "threads") -> None:
    """Refuse threads that are not ``None`` or an int from 1 to ``MAX_THREADS``, naming ``name``
    (``ArgumentTypeError`` for another type, a bool included; ``ArgumentError`` out of range)."""
    if threads is None:
        return
    wrong_type = isinstance(threads, bool) or not isinstance(threads, int)
    if wrong_type or not 1 <= threads <= MAX_THREADS:
        raise (ArgumentTypeError if wrong_type else ArgumentError)(
            f"{name} must be a whole number from 1 to {MAX_THREADS} (this machine has "
            f"{os.cpu_count()} CPUs), got {str(threads)[:80]}"
        )


def zoo_name(source: Any) -> str | None:
    """The zoo name ``source`` stands for, or ``None`` (a local path wins, as in load_model)."""
    if isinstance(source, zoo.ZooEntry):
        return source.name
    if isinstance(source, str) and source in zoo.ZOO and not Path(source).exists():
        return source
    return None


def candidates(
    measured: Sequence[tuple[str, str]], backend: str, precision: str
) -> list[tuple[str, str]]:
    """The (backend, precision) pairs to try in order, for the settings asked for."""
    if backend != "auto" and backend not in BACKENDS:
        raise LrnetError(f"backend {backend!r}: choose auto or one of {', '.join(BACKENDS)}")
    if precision != "auto" and precision not in PRECISIONS:
        raise LrnetError(f"precision {precision!r}: choose auto or one of {', '.join(PRECISIONS)}")
    if backend != "auto" and precision != "auto" and precision not in SUPPORTED[backend]:
        raise LrnetError(
            f"the {backend} backend runs {' or '.join(SUPPORTED[backend])}, not {precision}; "
            f"{precision} runs on {', '.join(b for b in BACKENDS if precision in SUPPORTED[b])}"
        )
    # the measured table first, then every pair that fits what was asked, fp32 PyTorch last
    pool = [*measured, *DEFAULT_FAST_PATHS]
    pool += [(b, p) for p in PRECISIONS for b in BACKENDS if p in SUPPORTED[b]]
    chosen = [
        (b, p)
        for b, p in dict.fromkeys(pool)
        if backend in ("auto", b) and precision in ("auto", p)
    ]
    if precision == "auto":  # auto never picks a precision the table did not measure as good
        chosen = [c for c in chosen if c in measured or c[1] == "fp32"]
    return chosen


def fast_paths(name: str | None, loaded: LoadedModel) -> tuple[tuple[tuple[str, str], ...], str]:
    """The ``(backend, precision)`` pairs ``auto`` may run for this model, fastest first, and
    why the inexact ones among them qualify (each is still checked on this machine)."""
    if name in zoo.ZOO:
        paths, measured_on = zoo.ZOO[name].fast_paths_for(backends.cpu_class())
        if paths:
            return paths, f"within {AUTO_TOLERANCE} mIoU of fp32 PyTorch on {measured_on} CPUs"
    record = int8_record(loaded) or {}
    agreement = record.get("agreement")
    if isinstance(agreement, (int, float)) and agreement >= AUTO_AGREEMENT:
        why = f"whose int8 labels agree with fp32 on {100 * agreement:.2f}% of calibration pixels"
        return (*INT8_PATHS, *DEFAULT_FAST_PATHS), why
    return DEFAULT_FAST_PATHS, "exact"


def auto_note(chosen: Backend, why: str, backend: str, precision: str) -> str:
    """What ``auto`` chose, and why, for ``Predictor.notes``."""
    if backend == "auto" and precision == "auto":
        return f"auto chose {chosen.name} {chosen.precision}: the fastest {why}"
    if backend == "auto":
        return f"auto chose {chosen.name} for {chosen.precision}"
    return f"auto chose {chosen.precision} on {chosen.name}: {why}"


def open_backend(
    loaded: LoadedModel,
    pool: Sequence[tuple[str, str]],
    device: torch.device | str,
    asked: tuple[str, str],
    calibrate: str | Path | None,
    threads: int | None,
    notes: list[str],
) -> Backend:
    """The first of ``pool`` that runs here (under ``asked`` precision ``"auto"``, an inexact one
    must also pass ``lrnet.inference.verify``); each one skipped adds a line to ``notes``, and
    when none runs the error says why the first could not."""
    failures: list[str] = []
    for back, prec in pool:
        if not backends.is_available(back):
            skip = f"{back} is not installed ({backends.INSTALL_HINT[back]})"
        elif back != "torch" and str(device).split(":")[0] != "cpu":
            skip = f"{back} runs on the CPU here, not {device}"
        elif prec == "bf16" and asked[1] == "auto" and not backends.has_native_bf16(device):
            skip = (
                f"bf16 skipped: {device} has no native bf16 (AVX512-BF16 or AMX), and "
                "emulated bf16 is slower than fp32"
            )
        else:
            try:
                backend, identity = _build(loaded, back, prec, device, calibrate, threads, notes)
                if prec == "fp32" or asked[1] != "auto":
                    return backend
                verdict = _verify(loaded, backend, identity, device)
                if verdict.ok:
                    notes.append(f"verified: {verdict.describe()}")
                    return backend
                skip = f"{back} {prec} skipped: {verdict.describe()}"
            except LrnetError as exc:
                skip = f"{back} {prec} skipped: {exc}"
        failures.append(skip)
        notes.append(skip)
    raise LrnetError(f"cannot run {asked[0]} {asked[1]}: {failures[0]}")


def _build(
    loaded: LoadedModel,
    back: str,
    prec: str,
    device: torch.device | str,
    calibrate: str | Path | None,
    threads: int | None,
    notes: list[str],
) -> tuple[Backend, str]:
    """The backend for one ``(back, prec)`` pair, and what it runs (a graph file's SHA-256 or,
    for PyTorch, the weights' fingerprint) for the check's cache."""
    if back == "torch":
        return TorchBackend(loaded.model, prec, device), weights_fingerprint(loaded)
    path = cached_int8(loaded, calibrate, progress=notes.append) if prec == "int8" else None
    path = path or cached_onnx(loaded)
    runner = backends.OnnxRuntimeBackend if back == "onnxruntime" else backends.OpenVinoBackend
    return runner(path, prec, threads), verify.file_identity(path)


def _verify(
    loaded: LoadedModel, backend: Backend, identity: str, device: torch.device | str
) -> verify.Verdict:
    """``verify.verify`` of ``backend`` against fp32 ONNX Runtime (no torch), else PyTorch."""
    if backends.is_available("onnxruntime"):
        reference: Backend = backends.OnnxRuntimeBackend(cached_onnx(loaded), "fp32")
    else:
        reference = TorchBackend(loaded.model, "fp32", device)
    return verify.verify(
        backend,
        reference,
        identity=identity,
        classes=loaded.classes,
        eval_size=loaded.config.data.eval_size,
    )


def check_settings(backend: str, precision: str) -> None:
    """Refuse a backend or precision that does not exist, or a pair that cannot run together."""
    candidates(DEFAULT_FAST_PATHS, backend, precision)


def choose(
    loaded: LoadedModel,
    name: str | None,
    backend: str,
    precision: str,
    device: torch.device | str,
    threads: int | None = None,
    calibrate: str | Path | None = None,
) -> tuple[Backend, list[str]]:
    """The backend that runs ``loaded`` for the settings asked, and the notes on why.

    Args:
        name: its zoo name (its entry's fast paths apply), or ``None``.
        backend, precision: ``"auto"`` or a name (``BACKENDS``, ``PRECISIONS``).
        device: where PyTorch runs (ONNX Runtime and OpenVINO run on the CPU).
        threads: intra-op threads of ONNX Runtime / OpenVINO.
        calibrate: training images to make the int8 graph from on first use.

    Raises:
        LrnetError: nothing asked for can run here; the message says why the first could not.
    """
    paths, why = fast_paths(name, loaded)
    notes: list[str] = []
    pool = candidates(paths, backend, precision)
    chosen = open_backend(loaded, pool, device, (backend, precision), calibrate, threads, notes)
    if backend == "auto" or precision == "auto":
        measured = (chosen.name, chosen.precision) in paths and chosen.precision != "fp32"
        notes.append(auto_note(chosen, why if measured else "exact", backend, precision))
    return chosen, notes
