"""What an output may replace, and how every output is written: one rule and one atomic write.

The rule (``check_replaceable``): a path that exists and was not written by lrnet is never
replaced unless the caller says ``overwrite``; an output is never one of the command's inputs
(the same file by any path, or a file inside an input folder), ``overwrite`` or not. The write
(``atomic_write``) goes to a temporary file in the destination's folder that is renamed over the
old file only once complete, so ``overwrite`` never loses the old file to a failed write.

How lrnet recognises its own files is ``lrnet.inference._marks``. The files ``lrnet predict``
writes per image, the inputs it reads and their ground truth are here too.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import glob
import os
import re
import shutil
import socket
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from lrnet._errors import LrnetError

# Recognising lrnet's own files is part of the rule; importers take it from here.
from lrnet.inference._marks import CARD_MARK as CARD_MARK
from lrnet.inference._marks import HTML_MARK as HTML_MARK
from lrnet.inference._marks import MARK as MARK
from lrnet.inference._marks import RUN_FILES as RUN_FILES
from lrnet.inference._marks import YAML_MARK as YAML_MARK
from lrnet.inference._marks import in_run_folder as in_run_folder
from lrnet.inference._marks import written_by_lrnet as written_by_lrnet

_ADVICE = {
    errno.ENOSPC: "the disk is full: free some space or write elsewhere",
    errno.EDQUOT: "the disk quota is used up: free some space or write elsewhere",
    errno.EROFS: "the file system is read-only: write elsewhere",
    errno.EACCES: "the folder is not writable: choose one you can write to",
    errno.EPERM: "the folder is not writable: choose one you can write to",
    errno.EISDIR: "a folder is in the way: move it or choose another name",
    errno.ENOTDIR: "a file is in the way of a folder on the path: move it or choose another path",
    errno.EEXIST: "a file is in the way of a folder on the path: move it or choose another path",
}


def cannot_write(path: Path | str, exc: OSError, advice: str | None = None) -> LrnetError:
    """The one-line error for an ``OSError`` met writing ``path``: the reason and what to do."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    todo = advice or _ADVICE.get(exc.errno or 0, "check the path and the disk, then run again")
    return LrnetError(f"cannot write {path}: {reason}; {todo}")


def atomic_write(
    path: str | Path,
    write: Callable[[Any], Any],
    *,
    by_path: bool = False,
    mode: int = 0o644,
    advice: str | None = None,
) -> Path:
    """Write ``path`` through a temporary file in its folder, renamed over it once complete.

    A kill, a full disk or an error in ``write`` leaves the old file (if any) as it was; an error
    leaves no temporary file behind, and one left by a kill (``kill -9``) is removed by the next
    ``atomic_write`` into the folder (``remove_stale_temporaries``). The folder is created if
    missing; the file gets ``mode`` (mkstemp's temporary files are 0600, odd for files meant to
    be shared).

    Args:
        path: the file to write.
        write: called with the open binary file, or with the temporary file's path when
            ``by_path`` (for writers that take a file name, such as ``torch.onnx.export``).
        advice: what to do when writing fails (default: by the error's kind).

    Returns:
        ``path``.

    Raises:
        LrnetError: the write failed with an ``OSError`` (no space, read-only, a folder in the
            way ...): names the file, the reason and what to do.
    """
    path = Path(path)
    tmp: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path.parent)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=temporary_prefix(path), suffix=".tmp")
        tmp = Path(name)
        with os.fdopen(fd, "wb") as f:
            if not by_path:
                write(f)
                f.flush()
        if by_path:
            write(tmp)
        with open(tmp, "rb+") as f:  # the file ``write`` left there, whichever way it wrote
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        raise cannot_write(path, exc, advice) from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
    return path


# atomic_write's temporary files: ``.<name>.lrnet-<host>-<pid>-<random>.tmp``. The host and the
# process id tell a file whose writer was killed (kill -9, a power cut) from one being written.
_HOST = re.sub(r"[^A-Za-z0-9]", "_", socket.gethostname())[:40] or "host"
_TEMPORARY = re.compile(rf"^\..+\.lrnet-{re.escape(_HOST)}-(\d+)-[a-z0-9_]+\.tmp$")
_swept: set[Path] = set()


def temporary_prefix(path: Path) -> str:
    """The start of this process's temporary files for ``path`` (``remove_stale_temporaries``
    removes those of a killed process that end in ``<letters or digits>.tmp``)."""
    return f".{path.name}.lrnet-{_HOST}-{os.getpid()}-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):  # another user's process; a pid past the limit
        return True
    return True


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Remove the temporary files of ``atomic_write`` in ``folder`` whose writer on this machine
    is gone (killed before it could remove them), and folders named so (a video's label frames);
    once per folder and process.

    Only names ``atomic_write`` makes are touched, and only those of a dead process id on this
    host: a file being written by a live process, or by another machine, is left alone.

    Returns:
        The files removed.
    """
    folder = Path(folder)
    key = folder.resolve()
    if key in _swept:
        return []
    _swept.add(key)
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    for entry in entries:
        found = _TEMPORARY.match(entry.name)
        if found and not _alive(int(found.group(1))):
            with contextlib.suppress(OSError):
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    os.unlink(entry.path)
                else:
                    continue
                removed.append(Path(entry.path))
    return removed


def write_text(path: str | Path, text: str, **kwargs: Any) -> Path:
    """``atomic_write`` of UTF-8 text."""
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")), **kwargs)


def same_file(a: Path | str, b: Path | str) -> bool:
    """Whether ``a`` and ``b`` are the same file (by any path, links included)."""
    try:
        return Path(a).resolve() == Path(b).resolve() or os.path.samefile(a, b)
    except OSError:
        return False


def _input_hit(path: Path, inputs: Iterable[Path | str]) -> Path | None:
    """The input ``path`` is, or lies inside, if any."""
    resolved = path.resolve()
    for given in inputs:
        source = Path(given)
        if same_file(path, source) or (source.is_dir() and source.resolve() in resolved.parents):
            return source
    return None


def check_replaceable(
    path: str | Path,
    *,
    overwrite: bool = False,
    inputs: Iterable[Path | str] = (),
    advice: str = "choose another name, move the file, or give --overwrite",
) -> None:
    """Refuse an output ``path`` that is an input, a folder, or a file lrnet did not write.

    Args:
        path: the file about to be written.
        overwrite: replace a file lrnet did not write (never an input, never a folder).
        inputs: files and folders the command reads; ``path`` may be none of them, nor inside
            one of the folders.
        advice: what the user can do, for the message.

    Raises:
        LrnetError: naming ``path`` and why it may not be replaced.
    """
    path = Path(path)
    hit = _input_hit(path, inputs)
    if hit is not None:
        where = "is" if same_file(path, hit) else "is inside"
        raise LrnetError(
            f"the output {path} {where} the input {hit}; an output never replaces an input: "
            "choose another output name"
        )
    if path.is_dir() and not path.is_symlink():
        raise LrnetError(f"the output {path} is a folder; give a file name, or move the folder")
    if overwrite or not (path.exists() or path.is_symlink()) or written_by_lrnet(path):
        return
    raise LrnetError(
        f"{path} exists and was not written by lrnet; refusing to replace it: {advice}"
    )


def add_overwrite_argument(parser: argparse.ArgumentParser, what: str) -> None:
    """The ``--overwrite`` flag of a command whose output ``what`` may be a user's file."""
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help=f"replace {what} that lrnet did not write (never an input)",
    )


# Files lrnet predict writes per image, after the image's stem.
OUTPUT_SUFFIXES = ("_label.png", "_color.png", "_overlay.png", "_stages.png")
# PNG text chunk (key, value) marking the files lrnet predict wrote, so only those are replaced.
OUTPUT_MARK = (MARK, "predict")


def image_output_paths(out_dir: str | Path, stem: str) -> list[Path]:
    """The four files predict writes for ``stem``: ``out_dir/<stem>_label.png`` ... ``_stages.png``.

    Raises:
        LrnetError: ``stem`` is not a plain file name (a separator, ``..``, empty), so the files
            would land outside ``out_dir``.
    """
    if (
        not isinstance(stem, str)
        or stem in ("", ".", "..")
        or any(c in stem for c in "/\\\0")
        or Path(stem).name != stem
    ):
        raise LrnetError(
            f"output stem {stem!r} is not a plain file name; outputs are written inside the "
            "output folder only"
        )
    return [Path(out_dir) / f"{stem}{suffix}" for suffix in OUTPUT_SUFFIXES]


def check_output(path: Path, overwrite: bool = False) -> None:
    """An output may replace only an earlier output of lrnet, never a user's file (``outputs``)."""
    check_replaceable(
        path,
        overwrite=overwrite,
        advice="choose another --out folder, move the file, or give --overwrite",
    )


def write_png(picture: Image.Image, path: Path) -> None:
    """Write ``picture`` atomically (temporary file + rename) with ``OUTPUT_MARK``."""
    info = PngInfo()
    info.add_text(*OUTPUT_MARK)
    atomic_write(path, lambda f: picture.save(f, format="PNG", pnginfo=info))


def plan_outputs(
    images: Sequence[Path],
    out_dir: Path,
    ground_truth: dict[Path, Path] | None = None,
    overwrite: bool = False,
) -> dict[Path, list[Path]]:
    """The output files of every image, checked before anything is written.

    Raises:
        LrnetError: ``out_dir`` is a file; an output would replace an input image or a
            ground-truth mask, or a file that lrnet did not write (unless ``overwrite``); or two outputs of
            this run would be the same file (also on a case-insensitive file system).
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise LrnetError(f"--out {out_dir} is a file; give a folder (it is created if missing)")
    protected: dict[Path, str] = {}
    for image in images:
        protected[Path(image).resolve()] = f"the input {image}"
    for image, mask in (ground_truth or {}).items():
        protected[Path(mask).resolve()] = f"the ground truth {mask} of {image}"
    plan: dict[Path, list[Path]] = {}
    seen: dict[str, Path] = {}
    for image in images:
        paths = image_output_paths(out_dir, Path(image).stem)
        for path in paths:
            resolved = path.resolve()
            hit = protected.get(resolved) or next(
                (what for p, what in protected.items() if path.exists() and same_file(path, p)),
                None,
            )
            if hit is not None:
                raise LrnetError(
                    f"the output {path} of {image} would replace {hit}; nothing was written: "
                    "choose another --out folder, or rename the file"
                )
            key = str(resolved).casefold()
            if key in seen:
                raise LrnetError(
                    f"{seen[key]} and {image} would both write {path}; nothing was written: "
                    "predict them into different --out folders"
                )
            seen[key] = Path(image)
            check_output(path, overwrite)
        plan[Path(image)] = paths
    return plan


def _is_glob(text: str) -> bool:
    return any(c in text for c in "*?[")


def collect_inputs(inputs: Sequence[str], exclude: Path | None = None) -> list[Path]:
    """Image files from files, folders (their images, not recursive) and glob patterns.

    Files named explicitly are kept whatever their suffix; folders and globs contribute files with
    an image suffix, except earlier outputs (``*_label.png`` ... inside ``exclude``, the output
    folder, that carry lrnet's mark), so that re-running with ``--out`` on the input folder does
    not label them. A file of the user's with such a name is an input like any other.

    Raises:
        LrnetError: an input does not exist, or a folder or pattern holds no image.
    """
    from lrnet.data._io import IMAGE_SUFFIXES

    def is_image(p: Path) -> bool:
        return p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES

    excluded = exclude.resolve() if exclude is not None else None
    found: list[Path] = []
    for text in inputs:
        path = Path(text).expanduser()
        if path.is_file():
            found.append(path)
            continue
        if path.is_dir():
            matches = sorted(p for p in path.iterdir() if is_image(p))
            what = f"folder {path}"
        elif _is_glob(text):
            matches = sorted(
                p for p in map(Path, glob.glob(str(path), recursive=True)) if is_image(p)
            )
            what = f"pattern {text!r}"
        elif path.exists():  # a named pipe or a device: reading it could block for ever
            raise LrnetError(f"input {path} is not a regular file; give image files or folders")
        else:
            raise LrnetError(f"input {path} does not exist")
        matches = [
            p
            for p in matches
            if not (
                p.resolve().parent == excluded
                and p.name.endswith(OUTPUT_SUFFIXES)
                and written_by_lrnet(p)
            )
        ]
        if not matches:
            raise LrnetError(f"{what} holds no image ({', '.join(IMAGE_SUFFIXES)})")
        found += matches
    # One entry per file, named as the user named it: a link's outputs are <link>_label.png,
    # not those of the file it points to (a cache's hashed name, say), and the file itself
    # wins over a link to it that a folder also holds.
    by_file: dict[Path, Path] = {}
    for p in found:
        kept = by_file.setdefault(p.resolve(), p)
        if kept.is_symlink() and not p.is_symlink():
            by_file[p.resolve()] = p
    unique = list(by_file.values())
    stems: dict[str, Path] = {}
    for p in unique:
        if p.stem in stems:
            raise LrnetError(
                f"{stems[p.stem]} and {p} have the same name and would overwrite each other's "
                "outputs; predict them into different --out folders"
            )
        stems[p.stem] = p
    return unique


def ground_truth_paths(gt: Path | None, images: Sequence[Path]) -> dict[Path, Path]:
    """The ground-truth mask of each image: ``gt`` itself for one image, or a folder's mask of
    the same stem. Images without a mask in the folder are left out (with a warning).

    Raises:
        LrnetError: ``gt`` does not exist, or is a file while there are several images.
    """
    if gt is None:
        return {}
    if gt.is_file():
        if len(images) != 1:
            raise LrnetError(
                f"--gt {gt} is a single mask but there are {len(images)} input images; give a "
                "folder of masks named like the images"
            )
        return {images[0]: gt}
    if not gt.is_dir():
        raise LrnetError(f"--gt {gt} does not exist")
    from lrnet.data._io import MASK_SUFFIXES

    masks = {p.stem: p for p in sorted(gt.iterdir()) if p.suffix.lower() in MASK_SUFFIXES}
    found = {}
    for image in images:
        if image.stem in masks:
            found[image] = masks[image.stem]
        else:
            warn(
                f"no ground truth for {image} in {gt} (no mask named {image.stem}.*); "
                "its panel has no ground-truth column"
            )
    return found


def read_ground_truth(
    path: Path,
    size: tuple[int, int],
    label_map: np.ndarray | None = None,
    palette: Sequence[Sequence[int]] | None = None,
) -> np.ndarray:
    """A mask of class indices, checked to be ``size`` (H, W); values >= C are drawn as void.

    ``label_map`` translates a dataset's raw values first (SUN RGB-D's 1..37 -> 0..36, say);
    values it does not list become void (255). A colour (RGB) mask is read through ``palette``
    (the model's class colours, which for a model trained on colour masks are the masks' own):
    each colour in it is its class, any other colour void.

    Raises:
        LrnetError: the file cannot be read, holds colours and no palette is given, or has
            another size.
    """
    from lrnet.data._io import pack_colors, read_label_image
    from lrnet.data.dataset import IGNORE_INDEX

    stored = read_label_image(path)
    if stored.shape[:2] != size:
        raise LrnetError(
            f"ground truth {path} is {stored.shape[0]}x{stored.shape[1]} (H x W) but its image "
            f"is {size[0]}x{size[1]}; is it the mask of another image?"
        )
    if stored.ndim == 3:
        if not palette:
            raise LrnetError(
                f"ground truth {path} is a colour (RGB) image and this model has no class colours "
                "to read it with; give an index mask (pixel values are class ids)"
            )
        keys = pack_colors(np.array([tuple(c)[:3] for c in palette], dtype=np.int64))
        packed = pack_colors(stored)
        mask = np.full(size, IGNORE_INDEX, dtype=np.int64)
        for index, key in enumerate(keys):  # the first class wins a colour given twice
            mask[(packed == key) & (mask == IGNORE_INDEX)] = index
        return mask
    mask = stored.astype(np.int64)
    if label_map is not None:
        known = mask < len(label_map)
        mask = np.where(known, label_map[np.where(known, mask, 0)], IGNORE_INDEX)
        mask[mask < 0] = IGNORE_INDEX
    return mask


def warn(message: str) -> None:
    print(f"lrnet predict: warning: {message}", file=sys.stderr)


def video_output_paths(out_dir: str | Path, stem: str) -> tuple[Path, Path, Path]:
    """``<stem>_overlay.mp4``, ``<stem>_mask.mp4`` and the label folder ``<stem>_labels``."""
    out_dir = Path(out_dir)
    return out_dir / f"{stem}_overlay.mp4", out_dir / f"{stem}_mask.mp4", out_dir / f"{stem}_labels"
