"""Generated road-like frames, `sleeg train` arguments that keep a training to seconds, and a run
stopped at a known step (pause_training.py)."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np

PAUSE_TRAINING = Path(__file__).with_name("pause_training.py")
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


def wait_for_files(paths: list[Path], proc, timeout: float = 300.0) -> None:
    """Until every path exists; fails if `proc` (a Popen) ends first or `timeout` s pass."""
    deadline = time.monotonic() + timeout
    while not all(p.exists() for p in paths):
        assert proc.poll() is None, f"the run ended (exit {proc.returncode}) before {paths}"
        assert time.monotonic() < deadline, f"no {paths} after {timeout:.0f} s"
        time.sleep(0.05)
