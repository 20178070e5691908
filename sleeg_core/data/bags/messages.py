"""Image messages in rosbag2 files: the message types, decoding and encoding images, and the
header stamp of a serialised (CDR) message."""

from __future__ import annotations

import struct

import cv2
import numpy as np
from rosbags.typesys import Stores, get_typestore

from sleeg_core.common.errors import SleegError
from sleeg_core.data.image_msgs import compressed_to_rgb, image_to_rgb

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
MAX_PIXELS = 8192 * 8192
TYPESTORE = get_typestore(Stores.LATEST)


def decode_image(msg: object, msgtype: str) -> np.ndarray:
    """A deserialised Image/CompressedImage → H×W×3 RGB (BadFrameError when it cannot)."""
    if msgtype.endswith("CompressedImage"):
        return compressed_to_rgb(msg, MAX_PIXELS)
    return image_to_rgb(msg, MAX_PIXELS)


def header_stamp(raw: bytes | memoryview) -> int:
    """The header stamp (ns) of a CDR message whose first field is a std_msgs/Header."""
    order = "<" if raw[1] == 1 else ">"  # encapsulation: CDR_LE or CDR_BE
    sec, nanosec = struct.unpack_from(f"{order}iI", raw, 4)
    return sec * 10**9 + nanosec


def with_stamp(raw: bytes | memoryview, stamp_ns: int) -> bytes:
    """A copy of a CDR message (Header first) with its header stamp replaced."""
    order = "<" if raw[1] == 1 else ">"
    out = bytearray(raw)
    struct.pack_into(f"{order}iI", out, 4, stamp_ns // 10**9, stamp_ns % 10**9)
    return bytes(out)


def image_message(image: np.ndarray, stamp_ns: int, frame_id: str, compressed: bool) -> object:
    """An H×W×3 RGB (or H×W mono8) array as a rosbags Image / CompressedImage message."""
    msgs = TYPESTORE.types
    header = msgs["std_msgs/msg/Header"](
        stamp=msgs["builtin_interfaces/msg/Time"](sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9),
        frame_id=frame_id,
    )
    if compressed:
        bgr = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])
        if not ok:
            raise SleegError("JPEG encoding failed")
        return msgs["sensor_msgs/msg/CompressedImage"](header=header, format="jpeg", data=buf)
    encoding = "mono8" if image.ndim == 2 else "rgb8"
    image = np.ascontiguousarray(image)
    return msgs["sensor_msgs/msg/Image"](
        header=header,
        height=image.shape[0],
        width=image.shape[1],
        encoding=encoding,
        is_bigendian=0,
        step=image.strides[0],
        data=image.reshape(-1),
    )
