"""`sleeg infer`: segmentation (+ anomaly score) for an image or a folder of images."""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from sleeg_core.cli.args import add_model_args, add_size_args, parse_inference_size
from sleeg_core.common.errors import SleegError
from sleeg_core.data.images import list_images, read_rgb, to_batch, write_rgb
from sleeg_core.data.labels import colorize
from sleeg_core.eval.visualize import score_overlay, score_range
from sleeg_core.model.inference import load_segmenter


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "infer",
        help="segment images; with --head also write anomaly scores and overlays",
        description="Writes per image <stem>_labels.png (uint8 train ids), <stem>_color.png "
        "(Cityscapes palette) and, with --head, <stem>_score.tiff (float32) and "
        "<stem>_overlay.png.",
    )
    add_model_args(parser)
    add_size_args(parser)
    parser.add_argument("--input", required=True, type=Path, help="an image or a folder")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    model, head_file = load_segmenter(args.segmentor, args.weights, args.head, args.device)
    model.tta = args.tta
    size = parse_inference_size(args.size)
    device = next(model.parameters()).device
    paths = [args.input] if args.input.is_file() else list_images(args.input)
    if not paths:
        raise SleegError(f"no images found in {args.input}")
    args.out.mkdir(parents=True, exist_ok=True)
    scores = ("sleeg",) if head_file else ()
    failed = 0
    for path in tqdm(paths, desc="infer", unit="img"):
        try:
            image = read_rgb(path)
        except SleegError as err:
            tqdm.write(f"skipped: {err}")
            failed += 1
            continue
        pred = model(
            to_batch(image, device), scores=scores, size=size, resize_mode=args.resize_mode
        )
        labels = pred.train_ids[0].cpu().numpy()
        stem = args.out / path.stem
        cv2.imwrite(f"{stem}_labels.png", labels)
        write_rgb(f"{stem}_color.png", colorize(labels))
        if head_file:
            score = pred.scores["sleeg"][0].cpu().numpy().astype(np.float32)
            cv2.imwrite(f"{stem}_score.tiff", score)
            lo, hi = score_range(score, head_file.score_stats)
            overlay = score_overlay(image, score, lo, hi, head_file.threshold)
            write_rgb(f"{stem}_overlay.png", overlay)
    skipped = f" ({failed} skipped)" if failed else ""
    print(f"wrote {len(paths) - failed} results to {args.out}{skipped}")
    return 1 if failed == len(paths) else 0
