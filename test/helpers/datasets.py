"""Small labelled datasets written to disk in the layouts `sleeg eval` reads."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def make_dataset(root: Path) -> Path:
    """Two 64×96 images with a labelled square (images/ + labels_masks/ layout)."""
    rng = np.random.default_rng(0)
    for folder in ("images", "labels_masks"):
        (root / folder).mkdir(parents=True)
    for i in range(2):
        image = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
        label = np.zeros((64, 96), np.uint8)
        label[20:40, 30:60] = 1
        label[:4] = 255
        cv2.imwrite(str(root / "images" / f"{i}.png"), image)
        cv2.imwrite(str(root / "labels_masks" / f"{i}.png"), label)
    return root
