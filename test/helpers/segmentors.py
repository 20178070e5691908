"""Inputs and ground truth for the segmentor tests: random uint8 batches and a real Cityscapes
frame from ../shared (skipped with the reason when absent)."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from sleeg_core.data.images import read_rgb
from sleeg_core.data.labels import color_to_train_ids

from .paths import shared_path

FRAME = "frankfurt_000001_058914"  # ../shared/data/driving/{FRAME}_leftImg8bit.png + gtFine


def random_images(b: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """A b×3×h×w uint8 batch of uniform noise."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, 3, h, w), dtype=torch.uint8, generator=g)


def frame_rgb() -> np.ndarray:
    """The Cityscapes frame FRAME as RGB (2048×1024)."""
    return read_rgb(shared_path("driving", f"{FRAME}_leftImg8bit.png"))


def ground_truth(size: tuple[int, int] | None = None) -> np.ndarray:
    """FRAME's train ids from its colour ground truth, resized (nearest) to `size` = (w, h)."""
    colour = read_rgb(shared_path("driving", f"{FRAME}_gtFine_color.png"))
    if size is not None:
        colour = cv2.resize(colour, size, interpolation=cv2.INTER_NEAREST)
    return color_to_train_ids(colour)


def pixel_accuracy(logits: torch.Tensor, gt: np.ndarray) -> float:
    """Share of the labelled pixels (not 255) whose logits' argmax is the ground truth."""
    pred = logits.argmax(1)[0].numpy()
    valid = gt != 255
    return float((pred[valid] == gt[valid]).mean())
