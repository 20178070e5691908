"""Render pseudo-anomalies on real driving frames into one PNG grid, to judge them by eye.

Like Fig. 3 of the SLEEG paper: per frame, the input, the frame with pasted patches, the same with
the pasted mask outlined, the pasted mask and — with `--weights` — the refined mask: the pasted
pixels the Otsu refinement keeps as anomaly (white) or ignores (grey), scored by the real ENet's
JEM (the warm-up score) or, with `--head`, by the trained head's SLEEG score A. Frames are
centre-cropped to the output aspect and resized.

    python benchmarks/figure_patches.py --data-root ../shared/data --out /tmp/patches \
        --weights ../shared/data/weights/enet_cityscapes/enet.pth [--head runs/x/head.pt]
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import torch

from sleeg_core.common.errors import SleegError
from sleeg_core.data.images import list_images, read_rgb, to_batch, write_rgb
from sleeg_core.model.inference import load_segmenter
from sleeg_core.train.patch_config import SHAPES, PatchConfig
from sleeg_core.train.patches import render_patches
from sleeg_core.train.refinement import refine_labels

OUTLINE = (255, 40, 40)


def load_frames(folder: Path, count: int, height: int, width: int) -> list[np.ndarray]:
    """Up to `count` frames (label images skipped), centre-cropped to width/height and resized."""
    paths = list_images(folder)
    if not paths:
        raise SleegError(f"no driving frames under {folder}")
    frames = []
    for path in paths[:count]:
        image = read_rgb(path)
        h, w = image.shape[:2]
        if w / h > width / height:
            keep = round(h * width / height)
            image = image[:, (w - keep) // 2 : (w - keep) // 2 + keep]
        else:
            keep = round(w * height / width)
            image = image[(h - keep) // 2 : (h - keep) // 2 + keep]
        frames.append(cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA))
    return frames


def _outlined(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    return cv2.drawContours(image.copy(), contours, -1, OUTLINE, max(1, image.shape[0] // 256))


def _title_bar(title: str, width: int) -> np.ndarray:
    bar = np.full((28, width, 3), 255, np.uint8)
    cv2.putText(bar, title, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    return bar


def _hjoin(tiles: list[np.ndarray], gap: int = 6) -> np.ndarray:
    spacer = np.full((tiles[0].shape[0], gap, 3), 255, np.uint8)
    return np.hstack([part for tile in tiles for part in (spacer, tile)][1:])


def _gray(mask: np.ndarray) -> np.ndarray:
    return np.repeat(mask[:, :, None].astype(np.uint8), 3, axis=2)


def render_grid(
    images: np.ndarray,
    patched: np.ndarray,
    pasted: np.ndarray,
    refined: np.ndarray | None = None,
) -> np.ndarray:
    """One RGB uint8 grid, a row per image: input | patched | outlined | pasted mask [| refined].

    images, patched: B×H×W×3 uint8; pasted, refined: B×H×W bool. The refined column shows
    anomaly pixels white and the pasted pixels that refinement ignores grey.
    """
    titles = ["input", "pseudo-anomalies", "pasted outline", "pasted mask"]
    if refined is not None:
        titles.append("refined mask (grey: ignored)")
    rows = [_hjoin([_title_bar(title, images.shape[2]) for title in titles])]
    for b in range(len(images)):
        tiles = [images[b], patched[b], _outlined(patched[b], pasted[b]), _gray(pasted[b] * 255)]
        if refined is not None:
            tiles.append(_gray(np.where(refined[b], 255, np.where(pasted[b], 110, 0))))
        rows += [np.full((6, rows[0].shape[1], 3), 255, np.uint8), _hjoin(tiles)]
    return np.vstack(rows)


@torch.no_grad()
def refined_mask(
    images: torch.Tensor, pasted: torch.Tensor, weights: Path | None, head: Path | None
) -> np.ndarray | None:
    """B×H×W bool: pasted pixels the refinement labels anomaly (None without weights)."""
    if weights is None:
        return None
    model, head_file = load_segmenter("enet", weights, head, "cpu")
    name = "energy" if head_file is None else "sleeg"  # energy: the JEM the warm-up refines with
    scores = model(images, scores=(name,)).scores[name]
    return (refine_labels(scores, pasted) == 1).numpy()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_root = Path(os.environ.get("SLEEG_SHARED", "../shared")) / "data"
    parser.add_argument("--data-root", type=Path, default=default_root)
    parser.add_argument("--out", type=Path, required=True, help="folder for the PNG")
    parser.add_argument("--preset", choices=("paper", "authors_code"), default="paper")
    parser.add_argument("--shape", choices=SHAPES, help="override the preset's shape")
    parser.add_argument("--count", type=int, default=6, help="frames (rows) to render")
    parser.add_argument("--size", type=int, nargs=2, default=(256, 512), metavar=("H", "W"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--noise-fraction", type=float, help="override the preset's fraction")
    parser.add_argument("--weights", type=Path, help="ENet checkpoint: add the refined mask column")
    parser.add_argument("--head", type=Path, help="trained head: refine with A instead of JEM")
    args = parser.parse_args(argv)
    try:
        frames = load_frames(args.data_root / "driving", args.count, *args.size)
        config = PatchConfig.authors_code() if args.preset == "authors_code" else PatchConfig()
        overrides = {"shape": args.shape, "noise_fraction": args.noise_fraction}
        config = replace(config, **{k: v for k, v in overrides.items() if v is not None})
        generator = torch.Generator().manual_seed(args.seed)
        out = render_patches(to_batch(frames), generator, config)
        refined = refined_mask(out.images, out.pasted, args.weights, args.head)
        grid = render_grid(
            np.stack(frames),
            out.images.permute(0, 2, 3, 1).numpy(),
            out.pasted.numpy(),
            refined,
        )
        path = args.out / f"patches_{args.preset}_{config.shape}_seed{args.seed}.png"
        write_rgb(path, grid)
    except SleegError as err:
        print(f"figure_patches: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {path}  ({len(frames)} frames, config {config.to_dict()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
