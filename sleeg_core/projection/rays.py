"""Pixel rays of one camera in the output frame, and where they meet the ground or a vertical
plane (pure functions shared by `locate` and `points`)."""

from __future__ import annotations

import numpy as np

from sleeg_core.projection.camera import CameraGeometry

HORIZONTAL_EPS = 1e-9  # a ray (or line of sight) with less horizontal extent is vertical


class Rays:
    """The rays of a camera's pixels in the output frame: pixel (u, v) at optical depth d is the
    point t + d·R·((u - cx)/fx, (v - cy)/fy, 1)."""

    def __init__(self, camera: CameraGeometry) -> None:
        self.intrinsics = camera.intrinsics
        self.rotation, self.origin = camera.pose.optical_to_output()

    def directions(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """N×3 output-frame directions of the pixels (u, v) (optical z component 1)."""
        return self.intrinsics.rays(u, v) @ self.rotation.T

    def _linear(self, u: np.ndarray, v: np.ndarray, axis: np.ndarray) -> np.ndarray:
        """The component along output-frame `axis` of the directions of pixels (u, v): linear
        in (u, v), so cheap for many pixels."""
        k = self.intrinsics
        a, b, c = axis @ self.rotation
        u = np.asarray(u, dtype=np.float64)
        v = np.asarray(v, dtype=np.float64)
        return (a / k.fx) * (u - k.cx) + (b / k.fy) * (v - k.cy) + c

    def rise(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Output-frame z component of the directions of pixels (u, v)."""
        return self._linear(u, v, np.array([0.0, 0.0, 1.0]))

    def along(self, u: np.ndarray, v: np.ndarray, sight: np.ndarray) -> np.ndarray:
        """Horizontal component along the unit line of sight of the directions of pixels (u, v):
        a pixel at optical depth d is at range d·along."""
        return self._linear(u, v, np.array([sight[0], sight[1], 0.0]))

    def ground_ranges(self, u: np.ndarray, v: np.ndarray, sight: np.ndarray) -> np.ndarray | None:
        """Ranges along the line of sight at which the pixels' rays meet the ground z = 0 (rays
        that do not reach it in front of the camera left out); None when the camera is not above
        the ground."""
        height = float(self.origin[2])
        if not height > 0:
            return None
        rise = self.rise(u, v)
        down = rise < 0
        return height / -rise[down] * self.along(u[down], v[down], sight)

    def to_output(self, u: np.ndarray, v: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """N×3 output-frame points of pixels (u, v) at optical depths `depth` (metres)."""
        return self.origin + np.asarray(depth, dtype=np.float64).reshape(-1, 1) * self.directions(
            u, v
        )

    def direction(self, u: float, v: float) -> np.ndarray:
        """The output-frame direction of one pixel (u, v) (optical z component 1)."""
        k = self.intrinsics
        return self.rotation @ np.array([(u - k.cx) / k.fx, (v - k.cy) / k.fy, 1.0])

    def line_of_sight(self, u: float, v: float) -> np.ndarray | None:
        """Unit horizontal (x, y) direction of pixel (u, v)'s ray; None for a vertical ray."""
        d = self.direction(u, v)[:2]
        norm = float(np.hypot(d[0], d[1]))
        return None if norm < HORIZONTAL_EPS else d / norm

    def at_range(self, u: float, v: float, sight: np.ndarray, reach: float) -> np.ndarray:
        """The point of pixel (u, v)'s ray at horizontal range `reach` along `sight` (the pixel's
        own line of sight)."""
        d = self.direction(u, v)
        return self.origin + d * (reach / float(d[:2] @ sight))


def silhouette(
    rays: Rays,
    sight: np.ndarray,
    contact: np.ndarray,
    sides: tuple[np.ndarray, np.ndarray],
    tops: tuple[np.ndarray, np.ndarray],
) -> tuple[float, float]:
    """(width, height) in metres of a region on the vertical plane through `contact` facing the
    camera along `sight`: the extent across the line of sight of its `sides` (u, v: the outer
    pixel edges of its rows), and the height above `contact` of its `tops` (u, v: the top pixel
    edges of its columns). NaN where no ray meets the plane."""
    n_side = sides[0].size
    d = rays.directions(np.concatenate([sides[0], tops[0]]), np.concatenate([sides[1], tops[1]]))
    along = d[:, :2] @ sight
    reach = float((contact[:2] - rays.origin[:2]) @ sight)
    ok = along > HORIZONTAL_EPS
    points = rays.origin + d * (reach / np.where(ok, along, 1.0))[:, None]
    across = points[:n_side, :2] @ np.array([-sight[1], sight[0]])
    side_ok, top_ok = ok[:n_side], ok[n_side:]
    width = float(np.ptp(across[side_ok])) if side_ok.any() else float("nan")
    height = float(points[n_side:, 2][top_ok].max() - contact[2]) if top_ok.any() else float("nan")
    return width, height
