"""sensor_msgs Image / CompressedImage → numpy, without cv_bridge and without ROS.

The decoders read only the messages' fields, so rclpy messages (the node) and rosbags' deserialised
ones (bags) go through the same code. They check everything a bad publisher can get wrong and
raise BadFrameError with the reason.
"""

from __future__ import annotations

from typing import Any, Protocol

import cv2
import numpy as np

from sleeg_core.errors import SleegError
from sleeg_core.images import MIN_SIDE, to_rgb8

CHANNELS = {"rgb8": 3, "bgr8": 3, "mono8": 1}


class ImageMsg(Protocol):
    """The fields of a sensor_msgs/Image that the decoders read."""

    encoding: str
    width: int
    height: int
    step: int
    is_bigendian: int
    data: Any  # bytes-like: bytes, array.array (rclpy), np.ndarray (rosbags)


class CompressedImageMsg(Protocol):
    """The fields of a sensor_msgs/CompressedImage that the decoder reads."""

    format: str
    data: Any


class BadFrameError(ValueError):
    """A frame that cannot be processed; the node logs the reason and skips it."""


def _check_size(width: int, height: int, max_pixels: int) -> None:
    if width < MIN_SIDE or height < MIN_SIDE:
        raise BadFrameError(f"frame is {width}×{height}: smaller than {MIN_SIDE}×{MIN_SIDE}")
    if width * height > max_pixels:
        raise BadFrameError(f"frame is {width}×{height}: more than max_input_pixels={max_pixels}")


def image_to_rgb(msg: ImageMsg, max_pixels: int) -> np.ndarray:
    """sensor_msgs/Image (rgb8, bgr8, mono8) → H×W×3 uint8 RGB (a copy only when needed)."""
    if msg.encoding not in CHANNELS:
        raise BadFrameError(
            f"unsupported encoding '{msg.encoding}' (supported: {', '.join(CHANNELS)})"
        )
    w, h, c = msg.width, msg.height, CHANNELS[msg.encoding]
    _check_size(w, h, max_pixels)
    if msg.step < w * c:
        raise BadFrameError(f"step {msg.step} < width×channels = {w * c}")
    if len(msg.data) < msg.step * h:
        raise BadFrameError(f"data has {len(msg.data)} bytes, step×height needs {msg.step * h}")
    rows = np.frombuffer(msg.data, dtype=np.uint8, count=msg.step * h).reshape(h, msg.step)
    pixels = rows[:, : w * c].reshape(h, w, c)
    if msg.encoding == "rgb8":
        return pixels
    if msg.encoding == "bgr8":
        return np.ascontiguousarray(pixels[..., ::-1])
    return np.repeat(pixels, 3, axis=2)


def image_to_array(msg: ImageMsg) -> np.ndarray:
    """A single-channel Image (mono8/8UC1 → uint8, 32FC1 → float32) → H×W array (a view)."""
    dtypes = {"mono8": np.uint8, "8UC1": np.uint8, "32FC1": np.float32}
    if msg.encoding not in dtypes:
        raise BadFrameError(f"unsupported encoding '{msg.encoding}' (need {', '.join(dtypes)})")
    dtype = np.dtype(dtypes[msg.encoding]).newbyteorder(">" if msg.is_bigendian else "<")
    w, h = msg.width, msg.height
    if msg.step < w * dtype.itemsize or msg.step % dtype.itemsize:
        raise BadFrameError(f"step {msg.step} does not fit width {w} of {msg.encoding}")
    if len(msg.data) < msg.step * h:
        raise BadFrameError(f"data has {len(msg.data)} bytes, step×height needs {msg.step * h}")
    rows = np.frombuffer(msg.data, dtype=dtype, count=msg.step * h // dtype.itemsize)
    pixels = rows.reshape(h, msg.step // dtype.itemsize)[:, :w]
    return pixels.astype(pixels.dtype.newbyteorder("="), copy=False)  # native byte order


def compressed_to_rgb(msg: CompressedImageMsg, max_pixels: int) -> np.ndarray:
    """sensor_msgs/CompressedImage (jpeg/png) → H×W×3 uint8 RGB."""
    fmt = msg.format.lower()
    if fmt and not any(k in fmt for k in ("jpeg", "jpg", "png")):
        raise BadFrameError(f"unsupported compressed format '{msg.format}' (jpeg or png)")
    buf = np.frombuffer(msg.data, dtype=np.uint8)
    if buf.size == 0:
        raise BadFrameError("compressed frame has no data")
    decoded = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if decoded is None:
        raise BadFrameError(f"cannot decode the {msg.format or 'compressed'} frame (corrupt data)")
    _check_size(decoded.shape[1], decoded.shape[0], max_pixels)
    try:
        return to_rgb8(decoded, "compressed frame")
    except SleegError as err:
        raise BadFrameError(str(err)) from err
