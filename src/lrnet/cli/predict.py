"""``lrnet predict``: label images (or one video) and write the coarse-to-fine panels."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from lrnet._checks import MAX_FPS, MIN_FPS, frame_rate
from lrnet._errors import LrnetError
from lrnet.cli.common import (
    MODEL_SOURCE,
    add_backend_arguments,
    add_device_argument,
    add_overwrite_argument,
    device_of,
    predictor_for,
)
from lrnet.inference.outputs import (
    collect_inputs,
    ground_truth_paths,
    plan_outputs,
    read_ground_truth,
    warn,
)
from lrnet.inference.video import (
    check_outputs,
    is_video,
    open_frames,
    open_video,
    open_webcam,
    predict_video,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "Writes <stem>_label.png (class indices), <stem>_color.png, <stem>_overlay.png and "
        "<stem>_stages.png (input, s_1 .. s_6, ground truth) per image. Unreadable images are "
        "skipped with a warning, and the command exits 2 once the others are done."
    )
    parser.add_argument("checkpoint", nargs="?", help=f"{MODEL_SOURCE}; or give --model")
    parser.add_argument(
        "inputs",
        nargs="*",
        metavar="INPUT",
        help="image files, folders or glob patterns, or one video (.mp4 .avi .mov .mkv .webm)",
    )
    parser.add_argument(
        "--model", metavar="MODEL", help="the model to run instead of the positional checkpoint"
    )
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    add_overwrite_argument(parser, "files in the output folder")
    parser.add_argument(
        "--gt",
        type=Path,
        metavar="MASK_OR_DIR",
        help="ground-truth mask (one input) or a folder of masks named like the images: in the "
        "model's dataset's encoding (CamVid, VOC, SUN RGB-D as shipped), class indices, or RGB "
        "colours of its palette; other values are void",
    )
    add_device_argument(parser)
    add_backend_arguments(parser)
    video = parser.add_argument_group(
        "video",
        "A video, a folder with --fps or a webcam with --source writes <stem>_overlay.mp4 (H.264), "
        "each frame's time kept, in constant memory.",
    )
    video.add_argument(
        "--source",
        type=int,
        metavar="N",
        help="label webcam /dev/videoN live (Linux, v4l2); Ctrl-C ends it and keeps the video",
    )
    video.add_argument(
        "--fps",
        type=frame_rate,
        help=f"read the input folder as video frames at this rate ({MIN_FPS:g} to {MAX_FPS:g})",
    )
    video.add_argument(
        "--frames",
        action="store_true",
        help="also write each frame's class indices as <stem>_labels/000000.png ...",
    )
    video.add_argument(
        "--mask-video", action="store_true", help="also write the colour-mask video <stem>_mask.mp4"
    )


def _predict_video(args: argparse.Namespace, model: str, inputs: list[str], device: Any) -> int:
    """The video branch of ``main``: one clip, frame folder or webcam -> overlay video."""
    if args.gt is not None:
        raise LrnetError("--gt applies to images; a video has no ground truth here")
    if args.source is not None:
        if inputs:
            raise LrnetError(f"--source {args.source} reads a webcam; drop the input {inputs[0]}")
        source = open_webcam(args.source)
    elif len(inputs) != 1:
        raise LrnetError(f"one video at a time, got {len(inputs)} inputs: {' '.join(inputs)}")
    elif args.fps is not None:
        source = open_frames(inputs[0], args.fps)
    else:
        source = open_video(inputs[0])
    extras = {"label_pngs": args.frames, "mask_video": args.mask_video}
    check_outputs(args.out, source, **extras, overwrite=args.overwrite)  # before the model loads
    predictor = predictor_for(args, model, device)
    outputs = predict_video(predictor, source, args.out, **extras, overwrite=args.overwrite)
    written = [p for p in (outputs.overlay, outputs.mask, outputs.labels) if p is not None]
    if outputs.truncated:
        warn(
            f"{source.name} states {outputs.stated_frames} frames but only {outputs.frames} "
            "decoded: the file looks truncated; the outputs hold the frames it has"
        )
    stopped = " (stopped by Ctrl-C)" if outputs.interrupted else ""
    print(f"{source.name} -> {', '.join(map(str, written))}: {outputs.frames} frames{stopped}")
    return 0


def main(args: argparse.Namespace) -> int:
    device = device_of(args)
    model, inputs = args.checkpoint, list(args.inputs)
    if args.model is not None:  # a positional model is then the first input
        model = args.model
        inputs = inputs if args.checkpoint is None else [args.checkpoint, *inputs]
    elif model is None:
        raise LrnetError("give the model (a checkpoint, or --model) and then the inputs")
    if args.source is not None or args.fps is not None or any(map(is_video, inputs)):
        return _predict_video(args, model, inputs, device)
    if args.frames or args.mask_video:
        raise LrnetError("--frames and --mask-video apply to a video input")
    if not inputs:
        raise LrnetError("no input: give image files, folders, glob patterns or a video")
    images = collect_inputs(inputs, exclude=args.out)
    ground_truth = ground_truth_paths(args.gt, images)
    plan_outputs(images, args.out, ground_truth, args.overwrite)  # every refusal before any write
    predictor = predictor_for(args, model, device)
    failures: list[str] = []
    for path in images:
        try:
            prediction = predictor.predict(path)
            gt = None
            if path in ground_truth:
                height, width = prediction.labels.shape
                gt = read_ground_truth(
                    ground_truth[path], (height, width), predictor.label_map, predictor.palette
                )
        except LrnetError as exc:
            warn(f"skipped: {exc}")
            failures.append(str(path))
            continue
        predictor.save(prediction, args.out, path.stem, gt, overwrite=args.overwrite)
        print(f"{path} -> {args.out / path.stem}_{{label,color,overlay,stages}}.png")
    if failures:
        raise LrnetError(
            f"{len(failures)} of {len(images)} images were skipped: {', '.join(failures)}"
        )
    return 0
