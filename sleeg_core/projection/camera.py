"""What one camera knows: pinhole intrinsics and its mounting pose (pure functions, no ROS).

Conventions (REP 103):
- Pixel coordinates are OpenCV's / camera_info's: pixel (u, v) = (column, row) has its centre at
  the integer coordinates, so it spans [u - 0.5, u + 0.5] × [v - 0.5, v + 0.5]; a point in the
  camera's optical frame (x right, y down, z forward) projects to u = fx·x/z + cx, v = fy·y/z + cy.
  Lens distortion is not modelled: give the intrinsics of the rectified image.
- The pose is that of the camera's **body** frame (x forward, y left, z up) in the output frame
  (default base_link, whose ground plane is z = 0): `translation` is the camera's position in
  metres (z = mounting height above the ground); `rpy` = (roll, pitch, yaw) in radians, fixed-axis
  rotations about x, then y, then z of the output frame (R = Rz(yaw)·Ry(pitch)·Rx(roll), as tf2's
  setRPY). Positive pitch tilts the camera down towards the road, positive yaw turns it left,
  positive roll turns it clockwise as seen from behind (its left side up).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sleeg_core.common.errors import SleegError


class GeometryError(SleegError):
    """Camera data, a pose or a depth image that cannot be used; the message names the cause."""


# the camera's optical frame (x right, y down, z forward) expressed in its body frame
# (x forward, y left, z up): body x = optical z, body y = -optical x, body z = -optical y
OPTICAL_TO_BODY = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def _finite(values: Sequence[float], what: str, count: int) -> tuple[float, ...]:
    """`values` as `count` finite floats, else GeometryError naming `what`."""
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError) as err:
        raise GeometryError(f"{what}: expected {count} numbers ({err})") from None
    if len(out) != count:
        raise GeometryError(f"{what}: expected {count} values, got {len(out)}")
    if not all(math.isfinite(v) for v in out):
        raise GeometryError(f"{what}: values must be finite, got {list(out)}")
    return out


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics of an image of `width`×`height` pixels (focal lengths and principal
    point in pixels). Checked on construction: GeometryError for non-finite values, a non-positive
    focal length or size."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self) -> None:
        _finite((self.fx, self.fy, self.cx, self.cy), "camera intrinsics", 4)
        if not (self.fx > 0 and self.fy > 0):
            raise GeometryError(
                f"camera intrinsics: focal lengths must be positive, got fx={self.fx} fy={self.fy}"
            )
        if not (_positive_int(self.width) and _positive_int(self.height)):
            raise GeometryError(
                f"camera intrinsics: image size must be positive, got {self.width}x{self.height}"
            )

    @staticmethod
    def from_k(k: Sequence[float], width: int, height: int) -> Intrinsics:
        """From camera_info's K (9 values, row-major [fx 0 cx; 0 fy cy; 0 0 1]) and image size.
        GeometryError for a wrong length, NaN/inf, zeros (an uncalibrated camera_info), a
        non-pinhole K (skew, or a last row other than 0 0 1) or a non-positive size."""
        v = _finite(k, "camera_info K", 9)
        if v[0] == 0.0 or v[4] == 0.0:
            raise GeometryError("camera_info K: focal lengths are zero (camera not calibrated)")
        if v[1] != 0.0 or v[3] != 0.0 or (v[6], v[7], v[8]) != (0.0, 0.0, 1.0):
            raise GeometryError(
                f"camera_info K: not a pinhole matrix (skew or last row): {list(v)}"
            )
        return Intrinsics(v[0], v[4], v[2], v[5], _size(width), _size(height))

    def scaled_to(self, width: int, height: int) -> Intrinsics:
        """The same camera for the image resized to `width`×`height` (same field of view): focal
        lengths scale with the size, the principal point keeps its place on the image (pixel
        edges scale, so cx' = (cx + 0.5)·s - 0.5). Whether a non-uniform scale is acceptable is
        the caller's choice."""
        sx, sy = _size(width) / self.width, _size(height) / self.height
        return Intrinsics(
            self.fx * sx,
            self.fy * sy,
            (self.cx + 0.5) * sx - 0.5,
            (self.cy + 0.5) * sy - 0.5,
            int(width),
            int(height),
        )

    def rays(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Pixel coordinates (any shape, float) → N×3 ray directions in the optical frame,
        scaled so that their z is 1 (a depth d along the optical axis is the point d·ray)."""
        u = np.asarray(u, dtype=np.float64).ravel()
        v = np.asarray(v, dtype=np.float64).ravel()
        return np.stack([(u - self.cx) / self.fx, (v - self.cy) / self.fy, np.ones_like(u)], 1)


def _positive_int(n: object) -> bool:
    return isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n > 0


def _size(n: object) -> int:
    if not _positive_int(n):
        raise GeometryError(f"image size must be a positive integer, got {n!r}")
    return int(n)  # type: ignore[call-overload]


def rpy_matrix(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """R = Rz(yaw)·Ry(pitch)·Rx(roll) (REP 103 fixed-axis roll, pitch, yaw)."""
    cr, sr = math.cos(roll), math.sin(roll)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cy, sy = math.cos(yaw), math.sin(yaw)
    return np.array(
        [
            [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
            [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
            [-sp, cp * sr, cp * cr],
        ]
    )


@dataclass(frozen=True)
class Pose:
    """The camera's body frame (x forward, y left, z up) in the output frame: `translation`
    (x, y, z) in metres, `rpy` (roll, pitch, yaw) in radians; see the module docstring."""

    translation: tuple[float, float, float] = (0.0, 0.0, 0.0)
    rpy: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "translation", _finite(self.translation, "camera translation", 3))
        object.__setattr__(self, "rpy", _finite(self.rpy, "camera roll/pitch/yaw", 3))

    @staticmethod
    def from_values(values: Sequence[float]) -> Pose:
        """[x, y, z, roll, pitch, yaw] (metres, radians) → Pose; GeometryError unless 6 finite
        values."""
        v = _finite(values, "camera pose [x, y, z, roll, pitch, yaw]", 6)
        return Pose(v[:3], v[3:])

    def optical_to_output(self) -> tuple[np.ndarray, np.ndarray]:
        """(R 3×3, t 3): a point p in the camera's optical frame is R @ p + t in the output frame
        (t is the camera's position)."""
        rotation = rpy_matrix(*self.rpy) @ OPTICAL_TO_BODY
        return rotation, np.array(self.translation, dtype=np.float64)


@dataclass(frozen=True)
class CameraGeometry:
    """What one camera knows: its intrinsics (at the image size the masks have) and its pose."""

    intrinsics: Intrinsics
    pose: Pose
