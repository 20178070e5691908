"""Synthetic road scenes rendered by ray casting with the tests' own camera model, independent of
sleeg_core.projection: a flat ground z = 0 and upright boxes standing on it, seen by a pinhole
camera at a known pose (REP 103 frames: output x forward, y left, z up; optical x right, y down,
z forward). A pixel belongs to a box when the ray through its centre hits the box."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Box:
    """An axis-aligned box standing on the ground: footprint [x0, x1] × [y0, y1], top at `top`."""

    x0: float
    x1: float
    y0: float
    y1: float
    top: float

    @staticmethod
    def at(distance: float, lateral: float, width: float, depth: float, top: float) -> Box:
        """A box whose near face is `distance` ahead of x = 0, centred at y = `lateral`."""
        return Box(distance, distance + depth, lateral - width / 2, lateral + width / 2, top)

    def nearest(self, x: float, y: float) -> float:
        """Horizontal distance from (x, y) to the nearest point of the footprint."""
        dx = max(self.x0 - x, 0.0, x - self.x1)
        dy = max(self.y0 - y, 0.0, y - self.y1)
        return math.hypot(dx, dy)


def axis_rotation(axis: int, angle: float) -> np.ndarray:
    """Rotation by `angle` about coordinate axis `axis` (Rodrigues' formula)."""
    k = np.zeros(3)
    k[axis] = 1.0
    cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + math.sin(angle) * cross + (1 - math.cos(angle)) * cross @ cross


def camera_to_output(rpy: tuple[float, float, float]) -> np.ndarray:
    """3×3 whose columns are the optical frame's axes (right, down, forward) in the output frame:
    the body frame turned by roll about x, then pitch about y, then yaw about z (fixed axes)."""
    roll, pitch, yaw = rpy
    body = axis_rotation(2, yaw) @ axis_rotation(1, pitch) @ axis_rotation(0, roll)
    forward, left, up = body[:, 0], body[:, 1], body[:, 2]
    return np.column_stack([-left, -up, forward])


@dataclass(frozen=True)
class Camera:
    """The tests' pinhole camera: intrinsics in pixels, pose of its body frame."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    translation: tuple[float, float, float]
    rpy: tuple[float, float, float]

    def scaled(self, factor: float) -> Camera:
        """The same camera at an image `factor` times the size (pixel edges scale)."""
        return Camera(
            self.fx * factor,
            self.fy * factor,
            (self.cx + 0.5) * factor - 0.5,
            (self.cy + 0.5) * factor - 0.5,
            round(self.width * factor),
            round(self.height * factor),
            self.translation,
            self.rpy,
        )

    def directions(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Output-frame ray directions of pixels (u, v), scaled to optical depth 1."""
        optical = np.stack(
            [(u - self.cx) / self.fx, (v - self.cy) / self.fy, np.ones_like(u, dtype=float)], -1
        )
        return optical @ camera_to_output(self.rpy).T

    def project(self, points: np.ndarray) -> np.ndarray:
        """N×3 output-frame points → N×2 pixel coordinates (u, v)."""
        optical = (np.asarray(points, float) - self.translation) @ camera_to_output(self.rpy)
        return np.stack(
            [
                self.fx * optical[:, 0] / optical[:, 2] + self.cx,
                self.fy * optical[:, 1] / optical[:, 2] + self.cy,
            ],
            1,
        )


def _hit_box(origin: np.ndarray, d: np.ndarray, box: Box) -> np.ndarray:
    """Optical depth where each ray first hits the box (slab method); NaN where it misses."""
    lo = np.array([box.x0, box.y0, 0.0])
    hi = np.array([box.x1, box.y1, box.top])
    with np.errstate(divide="ignore", invalid="ignore"):
        t1, t2 = (lo - origin) / d, (hi - origin) / d
    near = np.nanmax(np.minimum(t1, t2), axis=-1)
    far = np.nanmin(np.maximum(t1, t2), axis=-1)
    return np.where((far >= near) & (near > 0), near, np.nan)


def render(camera: Camera, boxes: list[Box]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mask H×W uint8 0/255 of the boxes, depth H×W float32 optical-z metres of the nearest
    surface — box or ground, NaN for the sky —, labels H×W int: 0 ground/sky, i + 1 box i)."""
    origin = np.array(camera.translation)
    # a ray's output-frame z per unit optical depth is linear in (u, v)
    ax, ay, az = camera_to_output(camera.rpy)[2]
    u = np.arange(camera.width, dtype=np.float64)
    v = np.arange(camera.height, dtype=np.float64)[:, None]
    dz = ax * (u - camera.cx) / camera.fx + ay * (v - camera.cy) / camera.fy + az
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = np.where(dz < 0, origin[2] / -dz, np.nan)
    labels = np.zeros(depth.shape, dtype=np.int32)
    for i, box in enumerate(boxes):
        window = _window(camera, box)
        if window is None:
            continue
        rows, cols = window
        vv, uu = np.meshgrid(
            np.arange(*rows, dtype=float), np.arange(*cols, dtype=float), indexing="ij"
        )
        hit = _hit_box(origin, camera.directions(uu, vv), box)
        here = depth[rows[0] : rows[1], cols[0] : cols[1]]
        closer = np.isfinite(hit) & ~(hit >= here)
        here[closer] = hit[closer]
        labels[rows[0] : rows[1], cols[0] : cols[1]][closer] = i + 1
    mask = np.where(labels > 0, 255, 0).astype(np.uint8)
    return mask, depth.astype(np.float32), labels


def _window(camera: Camera, box: Box) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """The image rows and columns (half-open ranges) the box can cover, with a 2-pixel margin;
    None when it is out of view. The whole image when a corner is behind the camera."""
    corners = np.array(
        [[x, y, z] for x in (box.x0, box.x1) for y in (box.y0, box.y1) for z in (0, box.top)]
    )
    optical = (corners - camera.translation) @ camera_to_output(camera.rpy)
    if (optical[:, 2] <= 0).any():
        return (0, camera.height), (0, camera.width)
    uv = camera.project(corners)
    c0, r0 = np.floor(uv.min(axis=0)).astype(int) - 2
    c1, r1 = np.ceil(uv.max(axis=0)).astype(int) + 3
    c0, c1 = max(c0, 0), min(c1, camera.width)
    r0, r1 = max(r0, 0), min(r1, camera.height)
    return None if c0 >= c1 or r0 >= r1 else ((r0, r1), (c0, c1))
