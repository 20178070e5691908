"""sensor_msgs Image / CompressedImage → numpy, without cv_bridge and without ROS.

The decoders read only the messages' fields, so rclpy messages (the node) and rosbags' deserialised
ones (bags) go through the same code. They check everything a bad publisher can get wrong and
raise BadFrameError with the reason.

`image_to_rgb` encodings (row padding `step` is honoured for all):
- rgb8, bgr8, rgba8, bgra8 (alpha dropped), mono8 (replicated to three channels);
- mono16: the high byte of each pixel (value >> 8, `is_bigendian` honoured), as 16-bit image
  files are read: a fixed rule, so the same scene gives the same input in every frame;
- yuv422 (UYVY) and yuv422_yuy2 (YUYV): BT.601 limited range, as OpenCV and V4L2 cameras;
  the width must be even;
- bayer_rggb8, bayer_bggr8, bayer_gbrg8, bayer_grbg8: demosaiced by OpenCV (edge-aware).
"""

from __future__ import annotations

from typing import Any, Protocol

import cv2
import numpy as np

from sleeg_core.common.errors import SleegError
from sleeg_core.data.images import MIN_SIDE, to_rgb8

BYTES_PER_PIXEL = {
    "rgb8": 3,
    "bgr8": 3,
    "rgba8": 4,
    "bgra8": 4,
    "mono8": 1,
    "mono16": 2,
    "yuv422": 2,
    "yuv422_yuy2": 2,
    "bayer_rggb8": 1,
    "bayer_bggr8": 1,
    "bayer_gbrg8": 1,
    "bayer_grbg8": 1,
}
# OpenCV conversions to RGB; rgb8 needs none, mono16 is reduced to mono8 first
_TO_RGB = {
    "bgr8": cv2.COLOR_BGR2RGB,
    "rgba8": cv2.COLOR_RGBA2RGB,
    "bgra8": cv2.COLOR_BGRA2RGB,
    "mono8": cv2.COLOR_GRAY2RGB,
    "mono16": cv2.COLOR_GRAY2RGB,
    "yuv422": cv2.COLOR_YUV2RGB_UYVY,
    "yuv422_yuy2": cv2.COLOR_YUV2RGB_YUY2,
    "bayer_rggb8": cv2.COLOR_BayerRGGB2RGB_EA,
    "bayer_bggr8": cv2.COLOR_BayerBGGR2RGB_EA,
    "bayer_gbrg8": cv2.COLOR_BayerGBRG2RGB_EA,
    "bayer_grbg8": cv2.COLOR_BayerGRBG2RGB_EA,
}


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
    """sensor_msgs/Image (any of BYTES_PER_PIXEL's encodings) → H×W×3 uint8 RGB (rgb8 without
    row padding: a view, else a copy)."""
    if msg.encoding not in BYTES_PER_PIXEL:
        raise BadFrameError(
            f"unsupported encoding '{msg.encoding}' (supported: {', '.join(BYTES_PER_PIXEL)})"
        )
    w, h, c = msg.width, msg.height, BYTES_PER_PIXEL[msg.encoding]
    _check_size(w, h, max_pixels)
    if msg.step < w * c:
        raise BadFrameError(f"step {msg.step} < width×bytes per pixel = {w * c}")
    if len(msg.data) < msg.step * h:
        raise BadFrameError(f"data has {len(msg.data)} bytes, step×height needs {msg.step * h}")
    if msg.encoding.startswith("yuv422") and w % 2:
        raise BadFrameError(f"{msg.encoding} needs an even width, not {w}")
    rows = np.frombuffer(msg.data, dtype=np.uint8, count=msg.step * h).reshape(h, msg.step)
    pixels = rows[:, : w * c].reshape(h, w, c)
    if msg.encoding == "rgb8":
        return pixels
    if msg.encoding == "mono16":  # the high byte: first in big-endian data, second in little
        pixels = pixels[..., 0 if msg.is_bigendian else 1]
    elif c == 1:
        pixels = pixels[..., 0]
    return cv2.cvtColor(np.ascontiguousarray(pixels), _TO_RGB[msg.encoding])


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
