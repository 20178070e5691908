"""Generated road-like frames and `sleeg train` arguments that keep a training to seconds."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

SMALL = [
    "--set", "data.augment.crop=[64, 128]", "--set", "data.augment.scale=[0.8, 1.2]",
    "--set", "calibration.size=[64, 128]", "--set", "calibration.frames=3",
    "--set", "patches.n_patches=3", "--set", "head.width=8", "--set", "refine.warmup_iters=2",
    "--set", "refine.enabled=true",
    "--set", "log_every=1", "--set", "checkpoint_every=2", "--device", "cpu", "--no-progress",
]  # fmt: skip


def make_frames(folder: Path, n: int = 6, seed: int = 0) -> Path:
    """Road-like synthetic frames: sky, road, a few coloured boxes."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for i in range(n):
        img = np.zeros((96, 192, 3), np.uint8)
        img[:40] = (70, 130, 180)
        img[40:] = (128, 64, 128)
        for _ in range(4):
            x, y = rng.integers(0, 160), rng.integers(0, 70)
            img[y : y + 20, x : x + 30] = rng.integers(0, 256, 3)
        img = (img + rng.integers(0, 20, img.shape)).clip(0, 255).astype(np.uint8)
        cv2.imwrite(str(folder / f"frame_{i:02d}.png"), img)
    return folder


def train_args(weights: Path, out: Path, *extra: str) -> list[str]:
    """`sleeg train` arguments with the SMALL settings, then `extra`."""
    return ["train", "--weights", str(weights), "--out", str(out), *SMALL, *extra]
