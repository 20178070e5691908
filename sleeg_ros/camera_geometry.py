"""Each camera's geometry for the metric outputs: intrinsics from its camera_info, its pose from a
`PoseSource` and, with `use_depth`, the depth image matched to the frame by header stamp.

The subscription callbacks only keep messages (`CameraInputs`: the last camera_info, the newest
depth images); the publishing thread asks `frame_geometry` for a frame's `FrameGeometry`. What
cannot be used is a cause (a stable key of `CAUSES`) with a one-line text: the frame then gets
no camera (every obstacle NaN, method none) or no depth (the flat-ground model), never an error.
camera_info of another size than the image is used when it is a uniform scale of it (the same
field of view: `Intrinsics.scaled_to`), as is a depth image; any other size is a mismatch.

The pose comes from parameters today (`ParameterPoses`: camera_pose, c.camera_pose); a reader of
/tf_static can replace it behind the same `PoseSource` interface.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from sensor_msgs.msg import CameraInfo, Image

from sleeg_core.projection.camera import CameraGeometry, GeometryError, Intrinsics, Pose
from sleeg_core.projection.locate import DEPTH_ENCODINGS, align_depth, decode_depth
from sleeg_ros.parameters import StartupError

# cause → what it means; a frame's causes are logged once each and shown on /diagnostics
CAUSES = {
    "no_camera_info": "no camera_info received",
    "bad_camera_info": "camera_info cannot be used",
    "camera_info_size": "camera_info is for another image size (not a uniform scale)",
    "no_camera_pose": "no camera_pose",
    "no_depth": "no depth image received",
    "depth_stamp": "no depth image within depth_max_age_s of the frame",
    "bad_depth": "the depth image cannot be used",
    "depth_size": "the depth image has another size (not a uniform scale)",
}
DEPTH_CAUSES = ("no_depth", "depth_stamp", "bad_depth", "depth_size")
KEEP_DEPTH = 8  # newest depth images kept per camera for stamp matching


class PoseSource(Protocol):
    """Where a camera's pose in the output frame comes from."""

    def pose(self, camera: str, stamp_ns: int) -> Pose | None:
        """Camera `camera`'s body frame in the output frame at `stamp_ns`; None: unknown."""


class ParameterPoses:
    """Poses from parameter camera_pose (camera c: c.camera_pose, empty: the node's), fixed."""

    def __init__(self, poses: dict[str, Pose | None]) -> None:
        self.poses = poses

    @staticmethod
    def from_params(cameras: list[tuple[str, str]], param: Callable[[str], Any]) -> ParameterPoses:
        """From [(camera name, its camera_pose parameter in force)]; StartupError naming the
        parameter for a pose that is not 6 finite numbers."""
        poses: dict[str, Pose | None] = {}
        for name, key in cameras:
            values = param(key) or []  # YAML [] is unset
            try:
                poses[name] = Pose.from_values(values) if len(values) else None
            except GeometryError as err:
                raise StartupError(f"parameter '{key}': {err}") from err
        return ParameterPoses(poses)

    def pose(self, camera: str, stamp_ns: int) -> Pose | None:
        return self.poses.get(camera)


@dataclass
class FrameGeometry:
    """What a frame's metric outputs are computed from, and what could not be used."""

    camera: CameraGeometry | None = None
    depth_m: np.ndarray | None = None  # H×W metres aligned to the frame, NaN: no reading
    issues: dict[str, str] = field(default_factory=dict)  # cause → one-line text


class CameraInputs:
    """A camera's last camera_info and newest depth images (thread-safe: kept by the executor's
    callbacks, read by the publishing thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._info: CameraInfo | None = None
        self._depths: deque[Image] = deque(maxlen=KEEP_DEPTH)

    def on_info(self, msg: CameraInfo) -> None:
        with self._lock:
            self._info = msg

    def on_depth(self, msg: Image) -> None:
        with self._lock:
            self._depths.append(msg)

    def forget_depth(self) -> None:
        """Drop the depth images kept (a new activation matches only the ones that follow)."""
        with self._lock:
            self._depths.clear()

    def latest(self) -> tuple[CameraInfo | None, list[Image]]:
        with self._lock:
            return self._info, list(self._depths)


def frame_geometry(
    inputs: CameraInputs,
    pose: Pose | None,
    stamp_ns: int,
    size: tuple[int, int],
    max_depth_age_s: float | None,
) -> FrameGeometry:
    """A frame's camera geometry and depth (`max_depth_age_s` None: depth not used) for an image
    of `size` (H, W); the causes of what is missing."""
    out = FrameGeometry()
    info, depths = inputs.latest()
    intrinsics = None
    try:
        intrinsics = intrinsics_for(info, size)
    except UnusableInputError as issue:
        out.issues[issue.cause] = str(issue)
    if pose is None:
        out.issues["no_camera_pose"] = CAUSES["no_camera_pose"]
    if intrinsics is not None and pose is not None:
        out.camera = CameraGeometry(intrinsics, pose)
    if max_depth_age_s is not None:
        try:
            out.depth_m = depth_for(depths, stamp_ns, size, max_depth_age_s)
        except UnusableInputError as issue:
            out.issues[issue.cause] = str(issue)
    return out


def effect(cause: str) -> str:
    """What a cause does to the frame's metric outputs, in words."""
    if cause in DEPTH_CAUSES:
        return "obstacles from the flat-ground model instead of depth"
    return "obstacles without metres (method none), no points or markers"


class UnusableInputError(Exception):
    """Why a camera_info or depth image cannot be used for a frame: `cause` (a key of CAUSES)."""

    def __init__(self, cause: str, detail: str = "") -> None:
        super().__init__(CAUSES[cause] + (f": {detail}" if detail else ""))
        self.cause = cause


def stamp_ns(msg: Any) -> int:
    """A message's header stamp in nanoseconds."""
    return msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec


def uniform_scale(src: tuple[int, int], dst: tuple[int, int]) -> bool:
    """Whether (H, W) `src` resized to `dst` keeps its aspect (to within a pixel of rounding)."""
    (sh, sw), (dh, dw) = src, dst
    return sh > 0 and sw > 0 and abs(sh * dw / sw - dh) <= 1.0 and abs(sw * dh / sh - dw) <= 1.0


def intrinsics_for(info: CameraInfo | None, size: tuple[int, int]) -> Intrinsics:
    """camera_info's intrinsics for an image of `size` (H, W); UnusableInputError why not."""
    if info is None:
        raise UnusableInputError("no_camera_info")
    try:
        intrinsics = Intrinsics.from_k(list(info.k), int(info.width), int(info.height))
    except GeometryError as err:
        raise UnusableInputError("bad_camera_info", str(err)) from err
    own = (intrinsics.height, intrinsics.width)
    if own == size:
        return intrinsics
    if not uniform_scale(own, size):
        detail = f"{own[1]}x{own[0]} for a {size[1]}x{size[0]} image"
        raise UnusableInputError("camera_info_size", detail)
    return intrinsics.scaled_to(size[1], size[0])


def depth_for(
    depths: list[Image], stamp: int, size: tuple[int, int], max_age_s: float
) -> np.ndarray:
    """The depth image nearest the frame's `stamp` (within `max_age_s`; of equally near ones the
    last received), in metres at `size` (H, W); UnusableInputError why there is none."""
    if not depths:
        raise UnusableInputError("no_depth")
    msg = min(reversed(depths), key=lambda m: abs(stamp_ns(m) - stamp))
    age_s = abs(stamp_ns(msg) - stamp) / 1e9
    if age_s > max_age_s:
        raise UnusableInputError("depth_stamp", f"the nearest is {age_s:.3g} s away")
    own = (int(msg.height), int(msg.width))
    if own != size and not uniform_scale(own, size):
        raise UnusableInputError("depth_size", f"{own[1]}x{own[0]} for a {size[1]}x{size[0]} image")
    try:
        metres = decode_depth(depth_pixels(msg), msg.encoding)
        return align_depth(metres, *size)
    except GeometryError as err:
        raise UnusableInputError("bad_depth", str(err)) from err


def depth_pixels(msg: Image) -> np.ndarray:
    """A depth Image's H×W array in its encoding's dtype (uint8 for an unknown encoding, which
    decode_depth refuses); GeometryError for data that does not fill it."""
    dtype = np.dtype(DEPTH_ENCODINGS.get(msg.encoding, (np.uint8,))[0])
    dtype = dtype.newbyteorder(">" if msg.is_bigendian else "<")
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    row = w * dtype.itemsize
    if h == 0 or w == 0 or step < row or len(msg.data) < step * (h - 1) + row:
        detail = f"{len(msg.data)} bytes for {w}x{h} {msg.encoding} (step {step})"
        raise GeometryError(f"depth image: malformed data: {detail}")
    data = np.frombuffer(msg.data, np.uint8)  # no copy (bytes or array.array)
    if step == row:
        pixels = data[: h * row].view(dtype).reshape(h, w)
    else:  # padded rows: the pixels of each
        pixels = np.lib.stride_tricks.as_strided(data, (h, row), (step, 1)).copy().view(dtype)
    return pixels.astype(dtype.newbyteorder("="), copy=False)
