"""The anomalous pixels as a point cloud in the output frame (pure function).

Each mask pixel's centre is back-projected: at its depth reading when it has a valid one, else
where its ray meets the ground plane z = 0 of the output frame (flat road); pixels with neither
(no reading and a ray at or above the horizon, or a camera not above the ground) are dropped.
At most `budget` points are kept, evenly spread over the valid pixels in row-major order, so the
same mask always gives the same points.
"""

from __future__ import annotations

import cv2
import numpy as np

from sleeg_core.projection.camera import CameraGeometry, GeometryError
from sleeg_core.projection.rays import Rays


def anomaly_points(
    mask: np.ndarray,
    camera: CameraGeometry,
    depth_m: np.ndarray | None,
    budget: int,
    score: np.ndarray | None = None,
) -> np.ndarray:
    """N×4 float32 (x, y, z in the output frame, score), N ≤ `budget`. `mask`: H×W, non-zero =
    anomalous, at the camera's image size; `depth_m`: None or H×W metres (NaN/0 = no reading);
    `score`: None (the fourth column is NaN) or the H×W score map. GeometryError for a negative
    budget or sizes that disagree."""
    if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or budget < 0:
        raise GeometryError(f"point budget must be a non-negative integer, got {budget!r}")
    size = (camera.intrinsics.height, camera.intrinsics.width)
    for name, image in (("mask", mask), ("depth image", depth_m), ("score map", score)):
        if image is not None and np.shape(image) != size:
            raise GeometryError(
                f"{name} of shape {np.shape(image)} does not match the camera's image size "
                f"{size[1]}x{size[0]}"
            )
    rows, cols = mask_pixels(mask)
    rays = Rays(camera)
    depth = (
        np.full(rows.size, np.nan) if depth_m is None else depth_m[rows, cols].astype(np.float64)
    )
    has_depth = np.isfinite(depth) & (depth > 0)
    # optical depth at which each ray meets the ground: the output-frame z of a ray is linear in
    # (u, v), so this is cheap for every pixel; > 0 only for rays going down from above the ground
    dz = rays.rise(cols, rows)
    height = float(rays.origin[2])
    with np.errstate(divide="ignore", invalid="ignore"):
        ground = np.where((dz < 0) & (height > 0), height / -dz, np.nan)
    depth = np.where(has_depth, depth, ground)
    keep = np.flatnonzero(np.isfinite(depth))
    if keep.size > budget:
        keep = keep[(np.arange(budget, dtype=np.int64) * keep.size) // max(budget, 1)]
    points = rays.to_output(cols[keep], rows[keep], depth[keep])
    on_ground = ~has_depth[keep]
    points[on_ground, 2] = 0.0  # exactly on the plane, not a rounding error off it
    values = (
        np.full(keep.size, np.nan) if score is None else np.asarray(score)[rows[keep], cols[keep]]
    )
    return np.column_stack([points, values]).astype(np.float32)


def mask_pixels(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of the mask's non-zero pixels in row-major order (cv2.findNonZero: many
    times faster than np.nonzero on a frame-sized uint8 mask)."""
    mask = np.asarray(mask)
    found = cv2.findNonZero(mask if mask.dtype == np.uint8 else (mask != 0).astype(np.uint8))
    if found is None:
        return np.empty(0, np.intp), np.empty(0, np.intp)
    xy = found.reshape(-1, 2)
    return xy[:, 1].astype(np.intp), xy[:, 0].astype(np.intp)
