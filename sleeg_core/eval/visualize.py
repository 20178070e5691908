"""Pictures a person would rather look at than read: score heat maps and overlays."""

from __future__ import annotations

import math

import cv2
import numpy as np


def score_range(score: np.ndarray, stats: dict[str, float] | None = None) -> tuple[float, float]:
    """Colour-map range: the head file's normal-pixel median → 99.9th percentile when known,
    else this map's 1st → 99th percentile."""
    if stats and "normal_p50" in stats and "normal_p999" in stats:
        lo, hi = stats["normal_p50"], stats["normal_p999"]
    else:
        lo, hi = (float(v) for v in np.percentile(score, [1, 99]))
    return lo, hi if hi > lo else lo + 1e-6


def heatmap(score: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """H×W float → H×W×3 uint8 RGB (inferno colour map over [lo, hi])."""
    norm = np.clip((score - lo) / (hi - lo), 0, 1)
    bgr = cv2.applyColorMap((norm * 255).astype(np.uint8), cv2.COLORMAP_INFERNO)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def score_overlay(
    image: np.ndarray,
    score: np.ndarray,
    lo: float,
    hi: float,
    threshold: float = math.nan,
    alpha: float = 0.55,
) -> np.ndarray:
    """The image with the score heat map blended in and the mask (score ≥ threshold) outlined."""
    out = cv2.addWeighted(image, 1 - alpha, heatmap(score, lo, hi), alpha, 0)
    if not math.isnan(threshold):
        mask = (score >= threshold).astype(np.uint8)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, (0, 255, 0), max(1, image.shape[1] // 500))
    return out
