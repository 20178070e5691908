"""camera_info and depth messages for the node's geometry tests, reading a PointCloud2 back, and
the node's log lines as they come."""

from __future__ import annotations

import numpy as np
from sensor_msgs.msg import CameraInfo, Image, PointCloud2


def camera_info(
    stamp: tuple[int, int], width: int, height: int, k: list[float] | None = None
) -> CameraInfo:
    """A pinhole camera_info of `width`×`height` (default K: focal length = width / 1.6, the
    principal point at the centre)."""
    f = width / 1.6
    msg = CameraInfo(width=width, height=height, distortion_model="plumb_bob")
    msg.k = k if k is not None else [f, 0.0, (width - 1) / 2, 0.0, f, (height - 1) / 2, 0, 0, 1.0]
    msg.header.stamp.sec, msg.header.stamp.nanosec = stamp
    msg.header.frame_id = "cam_front_optical"
    return msg


def depth_image(stamp: tuple[int, int], depth: np.ndarray, encoding: str) -> Image:
    """An H×W array (uint16 millimetres for 16UC1, float32 metres for 32FC1) as an Image."""
    depth = np.ascontiguousarray(depth)
    msg = Image(height=depth.shape[0], width=depth.shape[1], encoding=encoding, is_bigendian=0)
    msg.step = depth.strides[0]
    msg.data = depth.tobytes()
    msg.header.stamp.sec, msg.header.stamp.nanosec = stamp
    msg.header.frame_id = "cam_front_optical"
    return msg


def cloud_points(msg: PointCloud2) -> np.ndarray:
    """An unordered float32 PointCloud2 → N×(fields) array, in its fields' order."""
    assert msg.height == 1 and not msg.is_bigendian
    assert all(f.datatype == f.FLOAT32 and f.offset == 4 * i for i, f in enumerate(msg.fields))
    assert msg.point_step == 4 * len(msg.fields) and msg.row_step == msg.point_step * msg.width
    return np.frombuffer(bytes(msg.data), "<f4").reshape(msg.width, len(msg.fields))
