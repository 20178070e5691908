"""Frame decoders (sleeg_core.data.image_msgs) without ROS: a real driving frame converted to each
supported encoding by the test's own converters, decoded, and compared with the original RGB."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import pytest
from helpers.images import to_yuv422
from helpers.paths import shared_path

from sleeg_core.data.image_msgs import (
    BYTES_PER_PIXEL,
    BadFrameError,
    compressed_to_rgb,
    image_to_rgb,
)
from sleeg_core.data.images import read_rgb

PAD = 6  # bytes of row padding in every message: `step` must be honoured
MAX_PIXELS = 4096 * 4096

# per-encoding tolerance on |decoded − original| (0..255): (mean, 99th percentile)
EXACT = (0.0, 0.0)
TOLERANCE = {
    "rgb8": EXACT,
    "bgr8": EXACT,
    "rgba8": EXACT,
    "bgra8": EXACT,
    "mono8": EXACT,  # against the frame's grey image
    "mono16": EXACT,  # grey × 257, decoded as value >> 8
    "yuv422": (1.0, 6.0),  # 4:2:2 chroma and 8-bit YUV rounding (measured 0.6 / 4)
    "yuv422_yuy2": (1.0, 6.0),
    "bayer_rggb8": (1.5, 16.0),  # two of three colours interpolated (measured 0.9 / 11)
    "bayer_bggr8": (1.5, 16.0),
    "bayer_gbrg8": (1.5, 16.0),
    "bayer_grbg8": (1.5, 16.0),
}


@dataclass
class Msg:
    encoding: str
    width: int
    height: int
    step: int
    is_bigendian: int
    data: Any


@dataclass
class Compressed:
    format: str
    data: Any


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    """A Cityscapes frame (2048×1024) as RGB."""
    return read_rgb(shared_path("driving", "frankfurt_000000_000294_leftImg8bit.png"))


def grey(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def to_bayer(rgb: np.ndarray, pattern: str) -> np.ndarray:
    """RGB → one colour sample per pixel, `pattern` (e.g. "rggb") naming the 2×2 tile row-wise."""
    mosaic = np.empty(rgb.shape[:2], np.uint8)
    for (dy, dx), colour in zip(((0, 0), (0, 1), (1, 0), (1, 1)), pattern, strict=True):
        mosaic[dy::2, dx::2] = rgb[dy::2, dx::2, "rgb".index(colour)]
    return mosaic


def encode(rgb: np.ndarray, encoding: str, bigendian: bool = False) -> np.ndarray:
    """The frame's pixels in `encoding` as H×W×bytes-per-pixel uint8."""
    if encoding in ("rgb8", "bgr8", "rgba8", "bgra8"):
        alpha = np.arange(rgb.size // 3, dtype=np.uint8).reshape(*rgb.shape[:2], 1)
        rgba = np.concatenate([rgb, alpha], axis=-1)  # some alpha, to be dropped
        return rgba[..., ["rgba".index(c) for c in encoding[:-1]]]  # "bgra8" → b, g, r, a
    if encoding == "mono8":
        return grey(rgb)[..., None]
    if encoding == "mono16":
        return (
            (grey(rgb).astype(np.uint16) * 257)
            .astype(">u2" if bigendian else "<u2")[..., None]
            .view(np.uint8)
        )
    if encoding.startswith("yuv422"):
        return to_yuv422(rgb, "yuyv" if encoding.endswith("yuy2") else "uyvy")
    return to_bayer(rgb, encoding[len("bayer_") : -1])[..., None]


def message(pixels: np.ndarray, encoding: str, bigendian: bool = False, pad: int = PAD) -> Msg:
    """An Image message of H×W×bytes pixels whose rows carry `pad` bytes of padding."""
    h, w = pixels.shape[:2]
    rows = pixels.reshape(h, -1)
    padded = np.full((h, rows.shape[1] + pad), 0xAB, np.uint8)
    padded[:, : rows.shape[1]] = rows
    return Msg(encoding, w, h, padded.shape[1], int(bigendian), padded.tobytes())


def errors(decoded: np.ndarray, expected: np.ndarray) -> tuple[float, float]:
    diff = np.abs(decoded.astype(np.int16) - expected.astype(np.int16))
    return float(diff.mean()), float(np.percentile(diff, 99))


def test_every_supported_encoding_has_a_tolerance():
    assert set(TOLERANCE) == set(BYTES_PER_PIXEL)


@pytest.mark.parametrize("encoding", list(TOLERANCE))
def test_encoding_decodes_to_the_original_rgb(frame, encoding):
    rgb = image_to_rgb(message(encode(frame, encoding), encoding), MAX_PIXELS)
    assert rgb.shape == frame.shape and rgb.dtype == np.uint8
    expected = np.repeat(grey(frame)[..., None], 3, axis=2) if "mono" in encoding else frame
    mean, p99 = errors(rgb, expected)
    tol_mean, tol_p99 = TOLERANCE[encoding]
    assert mean <= tol_mean and p99 <= tol_p99, (encoding, mean, p99)


@pytest.mark.parametrize("bigendian", [False, True])
def test_mono16_takes_the_high_byte_in_either_byte_order(bigendian):
    values = np.array([[0, 255, 256, 4095], [32768, 65280, 65535, 1000]], np.uint16)
    values = np.tile(values, (4, 2))  # 8×8
    pixels = values.astype(">u2" if bigendian else "<u2")[..., None].view(np.uint8)
    rgb = image_to_rgb(message(pixels, "mono16", bigendian, pad=2), MAX_PIXELS)
    np.testing.assert_array_equal(rgb[..., 0], values >> 8)
    assert (rgb == rgb[..., :1]).all()


def test_rgb8_without_padding_is_a_view(frame):
    msg = message(frame, "rgb8", pad=0)
    msg.data = bytearray(msg.data)
    rgb = image_to_rgb(msg, MAX_PIXELS)
    assert np.shares_memory(rgb, np.frombuffer(msg.data, np.uint8))
    np.testing.assert_array_equal(rgb, frame)


def test_a_swapped_bayer_pattern_is_outside_the_tolerance(frame):
    """The tolerance tells the patterns apart: the right one decodes, the mirrored one does not."""
    msg = message(encode(frame, "bayer_rggb8"), "bayer_bggr8")
    mean, _ = errors(image_to_rgb(msg, MAX_PIXELS), frame)
    assert mean > 3 * TOLERANCE["bayer_bggr8"][0]


@pytest.mark.parametrize(("suffix", "fmt", "tol"), [(".png", "png", EXACT),
                         (".jpg", "rgb8; jpeg compressed bgr8", (2.0, 12.0))])  # fmt: skip
def test_compressed_frames_decode_to_the_original_rgb(frame, suffix, fmt, tol):
    ok, data = cv2.imencode(suffix, frame[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    rgb = compressed_to_rgb(Compressed(fmt, data.tobytes()), MAX_PIXELS)
    mean, p99 = errors(rgb, frame)
    assert rgb.shape == frame.shape and mean <= tol[0] and p99 <= tol[1], (mean, p99)


def tiny(encoding: str, width: int = 16, height: int = 8) -> Msg:
    pixels = np.zeros((height, width, BYTES_PER_PIXEL.get(encoding, 4)), np.uint8)
    return message(pixels, encoding, pad=0)


def refused(msg: Msg | Compressed) -> str:
    decode = compressed_to_rgb if isinstance(msg, Compressed) else image_to_rgb
    with pytest.raises(BadFrameError) as err:
        decode(msg, MAX_PIXELS)
    return str(err.value)


@pytest.mark.parametrize("encoding", ["32FC1", "16UC1", "nv21", "rgb16", "bayer_rggb16", ""])
def test_other_encodings_are_refused_naming_the_supported_ones(encoding):
    reason = refused(tiny(encoding))
    assert reason.startswith(f"unsupported encoding '{encoding}' (supported: rgb8, bgr8, ")
    assert all(e in reason for e in BYTES_PER_PIXEL)


def test_malformed_frames_are_refused_with_the_reason():
    short = tiny("mono16")
    short.data = short.data[:-1]
    narrow = tiny("bgra8")
    narrow.step -= 1
    assert refused(tiny("yuv422", width=15)) == "yuv422 needs an even width, not 15"
    assert refused(short) == "data has 255 bytes, step×height needs 256"
    assert refused(narrow) == "step 63 < width×bytes per pixel = 64"
    assert "smaller than 8×8" in refused(tiny("bayer_grbg8", width=4))
    assert "unsupported compressed format 'theora'" in refused(Compressed("theora", b"\x00"))
