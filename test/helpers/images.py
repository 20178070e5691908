"""The tests' own pixel converters, independent of the decoders under test."""

from __future__ import annotations

import numpy as np


def to_yuv422(rgb: np.ndarray, order: str) -> np.ndarray:
    """RGB → packed 4:2:2 (H×W×2 bytes; "uyvy" or "yuyv"), BT.601 limited range, chroma of each
    pixel pair averaged."""
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    y = 0.299 * r + 0.587 * g + 0.114 * b
    u = 128 + (b - y) / 1.772 * 224 / 255
    v = 128 + (r - y) / 1.402 * 224 / 255
    u, v = ((c[:, 0::2] + c[:, 1::2]) / 2 for c in (u, v))
    luma = np.clip(np.round(16 + y * 219 / 255), 0, 255).astype(np.uint8)
    chroma = np.empty_like(luma)
    chroma[:, 0::2] = np.clip(np.round(u), 0, 255)
    chroma[:, 1::2] = np.clip(np.round(v), 0, 255)
    pair = (chroma, luma) if order == "uyvy" else (luma, chroma)
    return np.stack(pair, axis=-1)
