"""The check ``auto`` runs before it trusts an inexact path (int8, bf16) on this machine.

A measurement on one kind of CPU says nothing about another, so the path runs beside fp32 on the
sample frames shipped in ``lrnet/samples`` (in ``VARIANTS``) and is kept only when the labels
agree; the verdict is cached per CPU flags, runtime and model (docs/deploy.md, "Which backend
runs").
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lrnet import zoo
from lrnet._errors import LrnetError
from lrnet._files import write_text
from lrnet.inference import backends
from lrnet.inference.image import crop_stage, letterbox, load_image, photometric

if TYPE_CHECKING:
    from lrnet.inference.backends import Backend

MIN_AGREEMENT = 0.99  # share of check pixels whose label must equal fp32's
MAX_CLASS_LOSS = 0.10  # largest share of a class's fp32 pixels a path may label otherwise ...
MIN_CLASS_SHARE = 0.005  # ... among classes that cover at least this share of the check pixels
# The photometric copies of each sample, (name, gain, gamma), as lrnet.inference.image.photometric.
VARIANTS = (
    ("as shot", 1.0, 1.0),
    ("bright", 1.8, 1.0),
    ("washed out", 1.3, 0.5),
    ("dark", 0.4, 1.0),
)
CHECK_FORMAT = 1  # bumped when the check set or the rule changes: old verdicts are not reused

# The counter tests read to see that a cached verdict is reused, not measured again.
checks_run = 0


@dataclass(frozen=True)
class Verdict:
    """What the check found for one path on this machine.

    Attributes:
        ok: the path may run under ``auto``.
        agreement: share of check pixels labelled as fp32 labels them.
        worst_class: the class that lost most of its fp32 pixels (``None``: none qualified).
        worst_loss: the share it lost.
        pixels: how many pixels were compared.
        seconds: how long the check took when it was made.
        cpu: the CPU flags it was made under (``lrnet.inference.backends.cpu_flags``).
        runtime: the runtime, its version and precision (``lrnet.inference.backends.describe``).
        cached: read from the cache rather than measured now.
    """

    ok: bool
    agreement: float
    worst_class: str | None
    worst_loss: float
    pixels: int
    seconds: float
    cpu: tuple[str, ...]
    runtime: str
    cached: bool = False

    def describe(self) -> str:
        """One line for ``Predictor.notes``."""
        flags = " ".join(self.cpu) or "no listed flags"
        loss = ""
        if self.worst_class is not None:
            loss = f", {self.worst_class} loses {100 * self.worst_loss:.1f}% of its pixels"
        when = "cached verdict" if self.cached else f"checked in {self.seconds:.1f} s, cached"
        return (
            f"{self.runtime} on this CPU ({flags}): {100 * self.agreement:.2f}% of check-set "
            f"labels equal fp32{loss} ({when}; needs >= {100 * MIN_AGREEMENT:g}% and <= "
            f"{100 * MAX_CLASS_LOSS:g}% per class)"
        )


def sample_paths() -> list[Path]:
    """The street frames shipped in ``lrnet/samples``, sorted by name."""
    folder = resources.files("lrnet") / "samples"
    return sorted(Path(str(p)) for p in folder.iterdir() if p.name.endswith(".jpg"))


def check_images() -> list[np.ndarray]:
    """Every sample in every ``VARIANTS`` copy, ``(3, H, W)`` float32 in [0, 1]."""
    images = []
    for path in sample_paths():
        pixels = load_image(path)
        images += [photometric(pixels, gain, gamma) for _, gain, gamma in VARIANTS]
    return images


def final_labels(
    backend: Backend, images: Sequence[np.ndarray], eval_size: Sequence[int] | None
) -> list[np.ndarray]:
    """The final stage's labels of each image at its run size, padding cut off."""
    labels = []
    for image in images:
        batch, valid = letterbox(image, eval_size)
        final = backend.run(batch[None])[-1][0]
        labels.append(crop_stage(final, valid, batch.shape[-2:]).argmax(0))
    return labels


def compare(
    reference: Sequence[np.ndarray], candidate: Sequence[np.ndarray], classes: Sequence[str]
) -> tuple[float, str | None, float, int]:
    """Agreement, the class that lost most (of those over ``MIN_CLASS_SHARE``), its loss and
    the pixel count, of two lists of label maps."""
    ref = np.concatenate([np.asarray(r).reshape(-1) for r in reference])
    got = np.concatenate([np.asarray(c).reshape(-1) for c in candidate])
    agreement = float((ref == got).mean()) if ref.size else 0.0
    worst: tuple[str | None, float] = (None, 0.0)
    for index in np.unique(ref):
        mine = ref == index
        if mine.mean() < MIN_CLASS_SHARE:
            continue
        loss = float((got[mine] != index).mean())
        if worst[0] is None or loss > worst[1]:
            name = classes[index] if index < len(classes) else f"class {index}"
            worst = (name, loss)
    return agreement, worst[0], worst[1], int(ref.size)


def verdicts_dir() -> Path:
    """``$LRNET_HOME/verified`` (default ``~/.cache/lrnet/verified``)."""
    return zoo.cache_dir() / "verified"


def verify(
    candidate: Backend,
    reference: Backend,
    *,
    identity: str,
    classes: Sequence[str],
    eval_size: Sequence[int] | None,
) -> Verdict:
    """Run ``candidate`` (int8 graph, bf16) beside the exact fp32 ``reference`` on the check set,
    or read the verdict cached for this CPU, runtime and ``identity`` (the graph file's SHA-256,
    or the weights' fingerprint for bf16). A damaged cached verdict is made again."""
    global checks_run
    runtime = backends.describe(candidate)
    key = json.dumps([CHECK_FORMAT, list(backends.cpu_flags()), runtime, identity])
    path = verdicts_dir() / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.json"
    with contextlib.suppress(OSError, ValueError, TypeError, KeyError):  # none, or damaged
        stored = json.loads(path.read_text())
        return Verdict(**{**stored, "cpu": tuple(stored["cpu"]), "cached": True})
    checks_run += 1
    start = time.perf_counter()
    images = check_images()
    expected = final_labels(reference, images, eval_size)
    got = final_labels(candidate, images, eval_size)
    agreement, worst, loss, pixels = compare(expected, got, classes)
    verdict = Verdict(
        ok=agreement >= MIN_AGREEMENT and loss <= MAX_CLASS_LOSS,
        agreement=agreement,
        worst_class=worst,
        worst_loss=loss,
        pixels=pixels,
        seconds=time.perf_counter() - start,
        cpu=backends.cpu_flags(),
        runtime=runtime,
    )
    record = {k: v for k, v in asdict(verdict).items() if k != "cached"}
    # a cache that cannot be written only means the check runs again (atomic_write: LrnetError)
    with contextlib.suppress(OSError, LrnetError):
        write_text(path, json.dumps(record))
    return verdict


def file_identity(path: str | Path) -> str:
    """SHA-256 of a graph file: what an int8 verdict is about."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
