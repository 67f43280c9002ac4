"""Inference on single images of any size (``Predictor``) and the ``lrnet predict`` command."""

from __future__ import annotations

import argparse
import glob
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from torch import Tensor, nn

from lrnet._errors import LrnetError
from lrnet.data.transforms import resize_image
from lrnet.models.fuse import fuse_conv_bn
from lrnet.visualize import as_mask, colorize, default_palette, overlay, stage_panel

MIN_SIZE = 32  # the networks' total stride: smaller inputs are scaled up

# Files written per image, after the image's stem.
OUTPUT_SUFFIXES = ("_label.png", "_color.png", "_overlay.png", "_stages.png")


@dataclass
class Prediction:
    """What the model says about one image.

    Attributes:
        image: ``(3, H, W)`` float32 input in [0, 1] as read (EXIF rotation applied), on the CPU.
        labels: ``(H, W)`` int64 final-stage class indices at the input's own size.
        stage_labels: one ``(h_k, w_k)`` int64 label map per stage, coarse to fine, each at the
            resolution that stage produced (for a 360 x 480 input: 12 x 15 ... 360 x 480).
        probabilities: ``(C, H, W)`` float32 softmax of the final stage at the input's size, or
            ``None`` unless asked for.
    """

    image: Tensor
    labels: Tensor
    stage_labels: list[Tensor]
    probabilities: Tensor | None = None


def run_size(
    height: int, width: int, eval_size: Sequence[int] | None = None, min_size: int = MIN_SIZE
) -> tuple[int, int]:
    """The ``(h, w)`` the network runs at for an ``height x width`` image.

    ``eval_size`` when given (the size the checkpoint was validated at); otherwise the image's own
    size, odd sizes included, unless a side is under ``min_size``: then the image is scaled up,
    keeping its aspect ratio, until the shorter side is ``min_size``.
    """
    if eval_size is not None:
        return int(eval_size[0]), int(eval_size[1])
    if min(height, width) >= min_size:
        return height, width
    scale = min_size / min(height, width)
    return max(min_size, round(height * scale)), max(min_size, round(width * scale))


def _pil_to_tensor(image: Image.Image) -> Tensor:
    """``(3, H, W)`` float32 in [0, 1] from a PIL image: EXIF rotation, 16-bit and alpha handled."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        scale = 1.0 if image.mode == "F" else 65535.0
        gray = np.clip(np.asarray(image, dtype=np.float32) / scale, 0.0, 1.0)
        array = np.repeat(gray[:, :, None], 3, axis=2)
    else:
        array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def load_image(image: str | Path | Image.Image | Tensor) -> Tensor:
    """``(3, H, W)`` float32 in [0, 1] from a path, a PIL image or such a tensor.

    Raises:
        LrnetError: the file cannot be read, or the tensor is not ``(3, H, W)``.
    """
    if isinstance(image, (str, Path)):
        from lrnet.data import read_image

        return read_image(image)
    if isinstance(image, Image.Image):
        return _pil_to_tensor(image)
    if isinstance(image, Tensor):
        if image.ndim != 3 or image.shape[0] != 3 or not image.is_floating_point():
            raise LrnetError(
                f"expected a (3, H, W) float image tensor in [0, 1], got {tuple(image.shape)} "
                f"{image.dtype}"
            )
        return image.detach().float().cpu()
    raise LrnetError(
        f"cannot predict on a {type(image).__name__}; give a path, PIL image or tensor"
    )


class Predictor:
    """Runs a segmentation model on one image at a time, at any input size.

    The image is resized to the checkpoint's evaluation size when it has one (or scaled up when a
    side is under 32 pixels); the final logits are resized back bilinearly, so ``labels`` always
    has the input's size. Other sizes, odd ones included, run natively.

    Args:
        model: returns a tuple of stage logits ``(N, C, h_k, w_k)`` for ``(N, 3, h, w)`` images.
        classes: class names (default ``"class 0"`` ...).
        palette: RGB colour per class (default: the PASCAL VOC colour map).
        eval_size: ``(h, w)`` to run at, or ``None`` for the native size.
        device: where the model runs.
        fast: fold BatchNorm into the convs and use channels-last memory (docs/benchmarks.md:
            1.6x at batch 1 on CPU, outputs equal up to float rounding); the model passed in
            is not modified.
        label_map: raw ground-truth value -> class index, for masks stored in a dataset's own
            encoding (``lrnet.data.LABEL_MAPS``); ``None``: masks hold class indices.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        classes: Sequence[str] = (),
        palette: Sequence[Sequence[int]] = (),
        eval_size: Sequence[int] | None = None,
        device: torch.device | str = "cpu",
        fast: bool = True,
        label_map: np.ndarray | None = None,
    ):
        self.device = torch.device(device)
        self.label_map = label_map
        self.memory_format = torch.channels_last if fast else torch.contiguous_format
        model = fuse_conv_bn(model) if fast else model.eval()
        self.model = model.to(self.device).to(memory_format=self.memory_format)
        self.num_classes = int(getattr(model, "num_classes", len(classes)))
        self.classes = list(classes) or [f"class {i}" for i in range(self.num_classes)]
        fallback = default_palette(self.num_classes)
        self.palette = [tuple(int(v) for v in c)[:3] for c in palette]
        self.palette += fallback[len(self.palette) :]
        self.eval_size = tuple(eval_size) if eval_size is not None else None

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: torch.device | str = "cpu") -> Predictor:
        """A predictor for a ``.pt`` checkpoint or a ``save_pretrained`` folder.

        Raises:
            LrnetError: the checkpoint is missing, truncated or not an lrnet checkpoint.
        """
        from lrnet.checkpoint import load_model
        from lrnet.data import LABEL_MAPS

        loaded = load_model(path)
        return cls(
            loaded.model,
            classes=loaded.classes,
            palette=loaded.palette,
            eval_size=loaded.config.data.eval_size,
            device=device,
            label_map=LABEL_MAPS.get(loaded.config.data.dataset),
        )

    @torch.inference_mode()
    def predict(
        self, image: str | Path | Image.Image | Tensor, *, probabilities: bool = False
    ) -> Prediction:
        """Label one image.

        Args:
            image: a file path, a PIL image or a ``(3, H, W)`` float tensor in [0, 1].
            probabilities: also return the final stage's softmax at the input's size.

        Returns:
            The final label map at the input's size and every stage's label map.
        """
        pixels = load_image(image)
        height, width = pixels.shape[-2:]
        size = run_size(height, width, self.eval_size)
        batch = resize_image(pixels[None], size).to(self.device)
        stages = self.model(batch.contiguous(memory_format=self.memory_format))
        final = stages[-1].float()
        if tuple(final.shape[-2:]) != (height, width):
            final = F.interpolate(final, size=(height, width), mode="bilinear", align_corners=False)
        return Prediction(
            image=pixels,
            labels=final[0].argmax(0).cpu(),
            stage_labels=[s[0].argmax(0).cpu() for s in stages],
            probabilities=final[0].softmax(0).cpu() if probabilities else None,
        )

    def save(
        self,
        prediction: Prediction,
        out_dir: str | Path,
        stem: str,
        ground_truth: Tensor | np.ndarray | None = None,
    ) -> list[Path]:
        """Write ``<stem>_label.png`` (class indices, mode "L"), ``_color.png``, ``_overlay.png``
        and ``_stages.png`` (coarse-to-fine panel, with ``ground_truth`` as its last tile).

        Returns:
            The four paths, in that order.
        """
        if self.num_classes > 256:
            raise LrnetError(f"{self.num_classes} classes do not fit in an 8-bit label PNG")
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        images = (
            as_mask(prediction.labels),
            colorize(prediction.labels, self.palette),
            overlay(prediction.image, prediction.labels, self.palette),
            stage_panel(
                prediction.image,
                prediction.stage_labels,
                self.palette,
                ground_truth=ground_truth,
                classes=self.classes,
            ),
        )
        paths = [out_dir / f"{stem}{suffix}" for suffix in OUTPUT_SUFFIXES]
        for picture, path in zip(images, paths, strict=True):
            picture.save(path)
        return paths


def _is_glob(text: str) -> bool:
    return any(c in text for c in "*?[")


def collect_inputs(inputs: Sequence[str], exclude: Path | None = None) -> list[Path]:
    """Image files from files, folders (their images, not recursive) and glob patterns.

    Files named explicitly are kept whatever their suffix; folders and globs contribute files with
    an image suffix, except earlier outputs (``*_label.png`` ... inside ``exclude``, the output
    folder), so that re-running with ``--out`` on the input folder does not label them.

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
        else:
            raise LrnetError(f"input {path} does not exist")
        matches = [
            p
            for p in matches
            if not (p.resolve().parent == excluded and p.name.endswith(OUTPUT_SUFFIXES))
        ]
        if not matches:
            raise LrnetError(f"{what} holds no image ({', '.join(IMAGE_SUFFIXES)})")
        found += matches
    unique = list(dict.fromkeys(p.resolve() for p in found))
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
            _warn(
                f"no ground truth for {image} in {gt} (no mask named {image.stem}.*); "
                "its panel has no ground-truth column"
            )
    return found


def read_ground_truth(
    path: Path, size: tuple[int, int], label_map: np.ndarray | None = None
) -> np.ndarray:
    """A mask of class indices, checked to be ``size`` (H, W); values >= C are drawn as void.

    ``label_map`` translates a dataset's raw values first (SUN RGB-D's 1..37 -> 0..36, say);
    values it does not list become void (255).

    Raises:
        LrnetError: the file cannot be read, holds colours, or has another size.
    """
    from lrnet.data._io import read_index_png

    mask = read_index_png(path)
    if mask.shape != size:
        raise LrnetError(
            f"ground truth {path} is {mask.shape[0]}x{mask.shape[1]} (H x W) but its image is "
            f"{size[0]}x{size[1]}; is it the mask of another image?"
        )
    mask = mask.astype(np.int64)
    if label_map is not None:
        from lrnet.data import IGNORE_INDEX

        known = mask < len(label_map)
        mask = np.where(known, label_map[np.where(known, mask, 0)], IGNORE_INDEX)
        mask[mask < 0] = IGNORE_INDEX
    return mask


def _warn(message: str) -> None:
    print(f"lrnet predict: warning: {message}", file=sys.stderr)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "Writes <stem>_label.png (class indices), <stem>_color.png, <stem>_overlay.png and "
        "<stem>_stages.png (input, s_1 .. s_6, ground truth) per image. Unreadable images are "
        "skipped with a warning; the command then exits with status 2 after the others are done."
    )
    parser.add_argument("checkpoint", help="a .pt checkpoint or a save_pretrained folder")
    parser.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="image files, folders or glob patterns"
    )
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    parser.add_argument(
        "--gt",
        type=Path,
        metavar="MASK_OR_DIR",
        help="ground-truth mask (one input) or a folder of masks named like the images, in the "
        "encoding of the checkpoint's dataset (CamVid, VOC, SUN RGB-D files as shipped) or as "
        "class indices; other values are void",
    )
    parser.add_argument(
        "--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)"
    )


def main(args: argparse.Namespace) -> int:
    from lrnet._runtime import resolve_device

    try:
        device = resolve_device(args.device)
    except RuntimeError as exc:
        raise LrnetError(f"--device {args.device!r} is not a device: {exc}") from None
    images = collect_inputs(args.inputs, exclude=args.out)
    ground_truth = ground_truth_paths(args.gt, images)
    predictor = Predictor.from_checkpoint(args.checkpoint, device=device)
    failures: list[str] = []
    for path in images:
        try:
            prediction = predictor.predict(path)
            pixels_h, pixels_w = prediction.labels.shape
            gt_path = ground_truth.get(path)
            gt = (
                None
                if gt_path is None
                else read_ground_truth(gt_path, (pixels_h, pixels_w), predictor.label_map)
            )
        except LrnetError as exc:
            _warn(f"skipped: {exc}")
            failures.append(str(path))
            continue
        predictor.save(prediction, args.out, path.stem, gt)
        print(f"{path} -> {args.out / path.stem}_{{label,color,overlay,stages}}.png")
    if failures:
        raise LrnetError(
            f"{len(failures)} of {len(images)} images were skipped: {', '.join(failures)}"
        )
    return 0
