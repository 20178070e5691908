"""From an anomaly score map to a clean obstacle mask and its connected regions (pure function).

mask = score ≥ threshold, inside the judged area → optional morphological opening → connected
components (8-connected) smaller than their minimum area removed: `min_area` pixels, or where
larger `min_area_near` · (lowest row + 1)², which is `min_area_near` · H² for a component
reaching the frame's bottom row and falls with the square of its lowest row towards the top (an
object of a given size looks smaller the farther up the road it stands). Each remaining component
becomes an `Obstacle` (box, area, mean/max score, centroid), largest first.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class MaskCleanup:
    """How the node cleans the thresholded mask (its parameters mask_open_px, min_blob_area,
    min_blob_area_near); NODE_CLEANUP holds the node's defaults."""

    open_px: int = 0
    min_area: int = 0
    min_area_near: float = 0.0

    def apply(
        self, score: np.ndarray, threshold: float, judged: np.ndarray | None = None
    ) -> tuple[np.ndarray, list[Obstacle]]:
        """`find_obstacles` with these settings."""
        return find_obstacles(
            score, threshold, self.open_px, self.min_area, judged, self.min_area_near
        )


# min_area_near 0.001: at a 1024-row frame's bottom a component needs 1,049 px (32×32); the
# largest value that cost the ENet head no RoadObstacle21 recall (docs/accuracy.md)
NODE_CLEANUP = MaskCleanup(open_px=3, min_area=64, min_area_near=0.001)


@dataclass(frozen=True)
class Obstacle:
    """One connected anomalous region in image pixels."""

    x: int
    y: int
    width: int
    height: int
    pixel_area: int
    mean_score: float
    max_score: float
    centroid_x: float
    centroid_y: float


def find_obstacles(
    score: np.ndarray,
    threshold: float,
    open_px: int = 0,
    min_area: int = 0,
    judged: np.ndarray | None = None,
    min_area_near: float = 0.0,
) -> tuple[np.ndarray, list[Obstacle]]:
    """score H×W float → (mask H×W uint8 with 0/255, obstacles largest first); pixels where the
    H×W bool `judged` is False are never in the mask (None: every pixel is judged)."""
    mask = score >= threshold
    if judged is not None:
        mask &= judged
    mask = mask.astype(np.uint8)
    if open_px > 1:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (open_px, open_px))
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)
    n, labels, stats, centroids = cv2.connectedComponentsWithStats(mask, connectivity=8)
    areas = stats[:, cv2.CC_STAT_AREA]
    lowest = stats[:, cv2.CC_STAT_TOP] + stats[:, cv2.CC_STAT_HEIGHT]  # lowest row + 1
    needed = np.maximum(max(min_area, 1), min_area_near * lowest.astype(np.float64) ** 2)
    keep = np.flatnonzero(areas >= needed)
    keep = keep[keep > 0]
    keep = keep[np.argsort(-areas[keep], kind="stable")]
    kept = np.zeros(n, dtype=bool)
    kept[keep] = True
    mask = np.where(kept[labels], 255, 0).astype(np.uint8)
    if keep.size == 0:
        return mask, []
    inside = mask.ravel() > 0  # statistics over the kept components' pixels only
    flat = labels.ravel()[inside]
    s = score.ravel()[inside].astype(np.float64)
    sums = np.bincount(flat, weights=s, minlength=n)
    maxima = np.full(n, -np.inf)
    np.maximum.at(maxima, flat, s)
    obstacles = [
        Obstacle(
            x=int(stats[i, cv2.CC_STAT_LEFT]),
            y=int(stats[i, cv2.CC_STAT_TOP]),
            width=int(stats[i, cv2.CC_STAT_WIDTH]),
            height=int(stats[i, cv2.CC_STAT_HEIGHT]),
            pixel_area=int(areas[i]),
            mean_score=float(sums[i] / areas[i]),
            max_score=float(maxima[i]),
            centroid_x=float(centroids[i, 0]),
            centroid_y=float(centroids[i, 1]),
        )
        for i in keep
    ]
    return mask, obstacles
