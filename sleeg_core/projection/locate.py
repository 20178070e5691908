"""One 3D location per obstacle: where its region meets the ground, how far, how wide and tall.

For each obstacle (a connected region of the cleaned mask, from `find_obstacles`):
- **line of sight**: the horizontal direction from the camera to the region's bottom centre (the
  bottom edge of the middle column of the region);
- **range**: the horizontal distance, along that line of sight, of the region's near face —
  the `RANGE_PERCENTILE`-th percentile (nearest rank below) of the ranges of its points: the
  depth path uses every pixel with a valid depth reading (back-projected), the ground path the
  region's bottom edge (the lowest pixel of each column, its bottom edge) met with the ground
  plane z = 0 of the output frame (a flat road; the region is assumed to stand on it);
- **contact point** (x, y, z): the point at that range on the line of sight — on the ground
  (z = 0) for the ground path, at the height of the bottom-centre ray for the depth path;
  `distance` is its horizontal distance from the camera (= the range);
- **width / height**: the region's silhouette on the vertical plane through the contact point,
  facing the camera — its extent across the line of sight, and the height of its top above the
  contact point. A deep object's top or side faces, when visible, add to them.

The depth path is used when depth is given and at least `MIN_DEPTH_FRACTION` of the region's
pixels (and `MIN_DEPTH_READINGS`) have a valid reading; else the ground path, which needs the
camera above the ground (z > 0) and some of the region's bottom edge below the horizon; else
method "none" with every value NaN. Without a camera every location is "none".
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from sleeg_core.eval.obstacles import Obstacle
from sleeg_core.projection.camera import CameraGeometry, GeometryError
from sleeg_core.projection.rays import Rays, silhouette

RANGE_PERCENTILE = 10.0  # the near face; robust to a few stray pixels and background at the edges
MIN_DEPTH_FRACTION = 0.25  # of the region's pixels with a valid depth reading
MIN_DEPTH_READINGS = 4
DEPTH_ENCODINGS = {"16UC1": (np.uint16, 1000.0), "32FC1": (np.float32, 1.0)}  # dtype, units/m


@dataclass(frozen=True)
class Location:
    """An obstacle in metres, in the output frame (REP 103: x forward, y left, z up).

    x, y, z: its contact point (see the module docstring); distance: the horizontal distance from
    the camera's position to the contact point; width, height: its size in metres; method:
    "depth", "ground" or "none" (not located: every value NaN)."""

    x: float
    y: float
    z: float
    distance: float
    width: float
    height: float
    method: str

    @staticmethod
    def unknown() -> Location:
        """A location that could not be measured (method "none", every value NaN)."""
        nan = float("nan")
        return Location(nan, nan, nan, nan, nan, nan, "none")


def decode_depth(data: np.ndarray, encoding: str) -> np.ndarray:
    """A depth image (H×W) → float32 metres: "16UC1" millimetres (uint16), "32FC1" metres
    (float32), in either byte order; zeros, NaN, ±inf and negative values (no reading) → NaN.
    GeometryError for another encoding, a dtype that does not match it, or not a 2-D array."""
    if encoding not in DEPTH_ENCODINGS:
        raise GeometryError(
            f"depth encoding '{encoding}' not supported; one of {', '.join(DEPTH_ENCODINGS)}"
        )
    dtype, per_metre = DEPTH_ENCODINGS[encoding]
    data = np.asarray(data)
    if data.ndim != 2 or data.dtype.newbyteorder("=") != np.dtype(dtype):  # either byte order
        raise GeometryError(
            f"depth image: expected a 2-D {np.dtype(dtype).name} array for {encoding}, "
            f"got {data.dtype.name} of shape {data.shape}"
        )
    metres = data.astype(np.float32) / np.float32(per_metre)
    metres[~(metres > 0) | ~np.isfinite(metres)] = np.nan
    return metres


def align_depth(depth_m: np.ndarray, height: int, width: int) -> np.ndarray:
    """Depth (h×w metres, registered to the image: same view, another size) → height×width by
    nearest neighbour (each output pixel takes the reading under its centre; readings are never
    blended, so no false depth appears at an object's edge)."""
    depth_m = np.asarray(depth_m)
    if depth_m.ndim != 2 or depth_m.size == 0:
        raise GeometryError(f"depth image: expected a non-empty 2-D array, got {depth_m.shape}")
    if not (height > 0 and width > 0):
        raise GeometryError(f"depth image: target size must be positive, got {width}x{height}")
    h, w = depth_m.shape
    if (h, w) == (height, width):
        return depth_m.astype(np.float32, copy=False)
    rows = np.minimum(((np.arange(height) + 0.5) * h / height).astype(np.intp), h - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * w / width).astype(np.intp), w - 1)
    return depth_m[rows[:, None], cols[None, :]].astype(np.float32, copy=False)


def locate_obstacles(
    mask: np.ndarray,
    obstacles: list[Obstacle],
    camera: CameraGeometry | None,
    depth_m: np.ndarray | None = None,
) -> list[Location]:
    """One Location per obstacle, in the same order (see the module docstring). `mask`: the H×W
    uint8 0/255 mask `find_obstacles` returned with `obstacles`; `depth_m`: None or H×W float32
    metres aligned to the image (NaN or 0 = no reading). GeometryError when the mask, the camera's
    image size and the depth image disagree, or an obstacle is not a region of the mask."""
    if camera is None or not obstacles:
        return [Location.unknown() for _ in obstacles]
    _check_sizes(mask, camera, depth_m)
    rays = Rays(camera)
    out = []
    for obstacle in obstacles:
        x, y, w, h = obstacle.x, obstacle.y, obstacle.width, obstacle.height
        region = _region(mask[y : y + h, x : x + w], obstacle)
        depth = None if depth_m is None else depth_m[y : y + h, x : x + w]
        out.append(_locate_region(region, (x, y), rays, depth))
    return out


def _check_sizes(mask: np.ndarray, camera: CameraGeometry, depth_m: np.ndarray | None) -> None:
    size = (camera.intrinsics.height, camera.intrinsics.width)
    if mask.ndim != 2 or mask.shape != size:
        raise GeometryError(
            f"mask of shape {mask.shape} does not match the camera's image size "
            f"{size[1]}x{size[0]} (scale the intrinsics to the image)"
        )
    if depth_m is not None and depth_m.shape != mask.shape:
        raise GeometryError(
            f"depth image of shape {depth_m.shape} does not match the mask {mask.shape} "
            "(align it first)"
        )


def _region(crop: np.ndarray, obstacle: Obstacle) -> np.ndarray:
    """The obstacle's 8-connected region (h×w bool) within the mask cut to its box: the
    component of the crop that fills the whole box with the obstacle's area (a region lies
    wholly inside its own box, so labelling the crop finds it as it is in the whole mask)."""
    _, labels, stats, _ = cv2.connectedComponentsWithStats(
        (crop > 0).astype(np.uint8), connectivity=8
    )
    key = (0, 0, obstacle.width, obstacle.height, obstacle.pixel_area)
    if crop.shape == (obstacle.height, obstacle.width):
        for i in range(1, len(stats)):
            if tuple(int(s) for s in stats[i]) == key:
                return labels == i
    o = obstacle
    raise GeometryError(
        f"obstacle at ({o.x}, {o.y}) of {o.width}x{o.height} px is not a region of the mask"
    )


@dataclass(frozen=True)
class Outline:
    """A region's edges in image coordinates (each an array pair u, v): `bottom` and `top`, the
    bottom / top edge of each column's lowest / highest pixel; `sides`, the left edge of each
    row's leftmost pixel and the right edge of its rightmost (rows at the pixel centre)."""

    bottom: tuple[np.ndarray, np.ndarray]
    top: tuple[np.ndarray, np.ndarray]
    sides: tuple[np.ndarray, np.ndarray]

    @staticmethod
    def of(region: np.ndarray, origin: tuple[int, int]) -> Outline:
        """The outline of `region` (h×w bool) whose top-left pixel is at `origin` (x, y)."""
        h, w = region.shape
        x0, y0 = float(origin[0]), float(origin[1])
        cols = np.flatnonzero(region.any(axis=0))
        lowest = h - 1 - np.argmax(region[::-1, cols], axis=0)
        highest = np.argmax(region[:, cols], axis=0)
        rows = np.flatnonzero(region.any(axis=1))
        left = np.argmax(region[rows], axis=1)
        right = w - 1 - np.argmax(region[rows, ::-1], axis=1)
        u = cols + x0
        return Outline(
            bottom=(u, lowest + (y0 + 0.5)),
            top=(u, highest + (y0 - 0.5)),
            sides=(np.concatenate([left - 0.5, right + 0.5]) + x0, np.tile(rows, 2) + y0),
        )

    def bottom_centre(self) -> tuple[float, float]:
        """The bottom edge of the region's middle column."""
        i = self.bottom[0].size // 2
        return float(self.bottom[0][i]), float(self.bottom[1][i])


def _locate_region(
    region: np.ndarray, origin: tuple[int, int], rays: Rays, depth: np.ndarray | None
) -> Location:
    outline = Outline.of(region, origin)
    u0, v0 = outline.bottom_centre()
    sight = rays.line_of_sight(u0, v0)
    if sight is None:
        return Location.unknown()
    method, ranges = "depth", _depth_ranges(region, origin, rays, depth, sight)
    if ranges is None:
        method, ranges = "ground", rays.ground_ranges(*outline.bottom, sight)
    if ranges is None or ranges.size == 0:
        return Location.unknown()
    k = int(RANGE_PERCENTILE / 100 * (ranges.size - 1))  # the percentile's rank, rounded down
    reach = float(np.partition(ranges, k)[k])
    if not reach > 0:
        return Location.unknown()
    contact = rays.at_range(u0, v0, sight, reach)
    if method == "ground":
        contact[2] = 0.0
    width, height = silhouette(rays, sight, contact, outline.sides, outline.top)
    return Location(
        float(contact[0]), float(contact[1]), float(contact[2]), reach, width, height, method
    )


def _depth_ranges(
    region: np.ndarray,
    origin: tuple[int, int],
    rays: Rays,
    depth: np.ndarray | None,
    sight: np.ndarray,
) -> np.ndarray | None:
    """Ranges along the line of sight of the region's valid depth readings, or None when there
    are too few."""
    if depth is None:
        return None
    rows, cols = np.nonzero(region)
    d = depth[rows, cols].astype(np.float64)
    valid = np.isfinite(d) & (d > 0)
    if int(valid.sum()) < max(MIN_DEPTH_READINGS, MIN_DEPTH_FRACTION * rows.size):
        return None
    return d[valid] * rays.along(cols[valid] + origin[0], rows[valid] + origin[1], sight)
