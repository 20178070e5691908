"""Inputs and ground truth for the segmentor tests: random uint8 batches and a real Cityscapes
frame from ../shared (skipped with the reason when absent)."""

from __future__ import annotations

import functools

import cv2
import numpy as np
import pytest
import torch

from sleeg_core.data.images import read_rgb, to_batch
from sleeg_core.data.labels import color_to_train_ids
from sleeg_core.model.weights import KNOWN_WEIGHTS, KnownWeights
from sleeg_core.segmentors import Segmentor, build_segmentor

from .paths import shared_path

FRAME = "frankfurt_000001_058914"  # ../shared/data/driving/{FRAME}_leftImg8bit.png + gtFine


def random_images(b: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """A b×3×h×w uint8 batch of uniform noise."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, 3, h, w), dtype=torch.uint8, generator=g)


@functools.cache
def frame_rgb() -> np.ndarray:
    """The Cityscapes frame FRAME as RGB (2048×1024), read once (do not modify it)."""
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


def known_weights_for(name: str) -> KnownWeights | None:
    """The known public checkpoint of segmentor `name`, or None when there is none."""
    return next((w for w in KNOWN_WEIGHTS.values() if w.segmentor == name), None)


@functools.cache
def real_segmentor(name: str) -> Segmentor:
    """Segmentor `name` with its known Cityscapes checkpoint from ../shared, loaded once per test
    session (skips with the reason when the file is absent or none is known)."""
    entry = known_weights_for(name)
    if entry is None:
        pytest.skip(f"no known Cityscapes checkpoint for {name}")
    return build_segmentor(name, shared_path("weights", entry.name, entry.filename))


@functools.cache
def real_logits(name: str, size: tuple[int, int] | None = None) -> torch.Tensor:
    """The real checkpoint's logits on FRAME resized to `size` = (w, h) (None: 2048×1024),
    computed once per test session (do not modify them)."""
    image = frame_rgb()
    if size is not None:
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return real_segmentor(name)(to_batch(image)).logits
