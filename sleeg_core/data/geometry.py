"""Frame ↔ network-input geometry, and the part of a frame that is judged (pure functions).

Resize modes (a frame of H×W → a network input of h×w):
- `stretch`: the whole frame resized to h×w (the aspect ratio is not kept);
- `pad`: the whole frame scaled to fit inside h×w, aspect kept, centred; the rest is padding;
- `crop`: the frame scaled to cover h×w, aspect kept; only a centred window of it is seen.

Each is a `Fit`: a whole-pixel rectangle of the frame (`src`) resized onto a whole-pixel rectangle
of the network input (`dst`). Outputs go back by the inverse — `dst` cut out and resized onto
`src` — so they are at the frame's size and every output pixel lies on the frame pixel it was
computed from (continuous coordinates, pixel i spanning [i, i + 1), as F.interpolate without
align_corners). Frame pixels outside `src` (crop) have no output and get a fill value.

The judged area: frame pixels inside the network's view (`src`), inside the ROI polygon and
outside the ignore mask; anomalies are only reported there.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from sleeg_core.common.choices import RESIZE_MODES as RESIZE_MODES  # re-exported
from sleeg_core.common.errors import SleegError


class Rect(NamedTuple):
    """A rectangle of whole pixels."""

    x: int
    y: int
    width: int
    height: int

    def cut(self, tensor: torch.Tensor) -> torch.Tensor:
        """The rectangle of a …×H×W tensor (a view)."""
        return tensor[..., self.y : self.y + self.height, self.x : self.x + self.width]


@dataclass(frozen=True)
class Fit:
    """How a frame (H, W) becomes a network input (h, w): `src` of the frame onto `dst`."""

    frame: tuple[int, int]
    size: tuple[int, int]
    src: Rect
    dst: Rect

    def frame_to_input(self, x: float, y: float) -> tuple[float, float]:
        """Continuous frame coordinates → network-input coordinates."""
        s, d = self.src, self.dst
        return d.x + (x - s.x) * d.width / s.width, d.y + (y - s.y) * d.height / s.height

    def input_to_frame(self, u: float, v: float) -> tuple[float, float]:
        """Continuous network-input coordinates → frame coordinates (the inverse)."""
        s, d = self.src, self.dst
        return s.x + (u - d.x) * s.width / d.width, s.y + (v - d.y) * s.height / d.height


def fit_frame(frame: tuple[int, int], size: tuple[int, int], mode: str) -> Fit:
    """The `Fit` of a frame (H, W) to a network input (h, w) in resize `mode`."""
    (fh, fw), (h, w) = frame, size
    whole_frame, whole_input = Rect(0, 0, fw, fh), Rect(0, 0, w, h)
    if mode == "stretch":
        return Fit(frame, size, whole_frame, whole_input)
    if mode == "pad":
        scale = min(w / fw, h / fh)
        dw, dh = min(w, max(1, round(fw * scale))), min(h, max(1, round(fh * scale)))
        return Fit(frame, size, whole_frame, Rect((w - dw) // 2, (h - dh) // 2, dw, dh))
    if mode == "crop":
        scale = max(w / fw, h / fh)
        sw, sh = min(fw, max(1, round(w / scale))), min(fh, max(1, round(h / scale)))
        return Fit(frame, size, Rect((fw - sw) // 2, (fh - sh) // 2, sw, sh), whole_input)
    raise SleegError(f"unknown resize mode '{mode}'; choose one of: {', '.join(RESIZE_MODES)}")


def to_input(images: torch.Tensor, fit: Fit, pad: Sequence[float]) -> torch.Tensor:
    """B×C×H×W frames → B×C×h×w network input: `src` resized onto `dst` (bilinear, antialiased;
    uint8 stays uint8, rounded), the rest filled with `pad` (one value, or one per channel)."""
    s, d = fit.src, fit.dst
    x = s.cut(images)
    if (s.height, s.width) != (d.height, d.width):
        x = F.interpolate(x.float(), size=(d.height, d.width), mode="bilinear", antialias=True)
        if images.dtype == torch.uint8:
            x = x.round().clamp(0, 255).to(torch.uint8)
    if d == Rect(0, 0, fit.size[1], fit.size[0]):
        return x
    canvas = torch.empty(
        (*x.shape[:2], *fit.size), dtype=x.dtype, device=x.device, memory_format=torch.channels_last
    )
    canvas[:] = torch.as_tensor(pad, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    d.cut(canvas)[:] = x
    return canvas


def to_frame(
    maps: torch.Tensor, fit: Fit, fill: float | None = None, mode: str = "bilinear"
) -> torch.Tensor:
    """B×C×h×w network outputs → B×C×H×W at the frame: `dst` resized onto `src` (F.interpolate
    `mode`); frame pixels outside `src` get `fill`, or with None each image's lowest value."""
    s, d = fit.src, fit.dst
    y = d.cut(maps)
    if (s.height, s.width) != (d.height, d.width):
        y = F.interpolate(y, size=(s.height, s.width), mode=mode)
    if s == Rect(0, 0, fit.frame[1], fit.frame[0]):
        return y
    out = y.new_empty((*y.shape[:2], *fit.frame))
    out[:] = y.flatten(1).amin(1).view(-1, 1, 1, 1) if fill is None else fill
    s.cut(out)[:] = y
    return out


def parse_roi_polygon(values: Sequence[float]) -> list[tuple[float, float]]:
    """A flat list x0, y0, x1, y1, … of normalised coordinates in [0, 1] (x across, y down) →
    polygon points; empty → [] (no ROI: the whole frame)."""
    if isinstance(values, str | bytes) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in values
    ):
        raise SleegError(f"needs a list of numbers, got {values!r}")
    if len(values) == 0:
        return []
    if len(values) % 2 or len(values) < 6:
        raise SleegError(
            f"needs x,y pairs of at least 3 points (an even count, ≥ 6), got {len(values)} numbers"
        )
    if not all(0.0 <= v <= 1.0 for v in values):
        raise SleegError(f"coordinates are normalised: each in [0, 1], got {list(values)}")
    return [(float(x), float(y)) for x, y in zip(values[0::2], values[1::2], strict=True)]


def rasterize_polygon(points: Sequence[tuple[float, float]], height: int, width: int) -> np.ndarray:
    """H×W bool: the pixels whose centre lies inside the polygon (normalised points, scaled by the
    frame size; even–odd rule, so a pixel is in or out by its centre alone)."""
    inside = np.zeros((height, width), dtype=bool)
    cy, cx = np.arange(height) + 0.5, np.arange(width) + 0.5
    pts = [(x * width, y * height) for x, y in points]
    for (x1, y1), (x2, y2) in zip(pts, pts[1:] + pts[:1], strict=True):
        rows = (y1 > cy) != (y2 > cy)  # this edge crosses the row's centre line (never flat)
        if rows.any():
            x_cross = x1 + (cy[rows] - y1) * (x2 - x1) / (y2 - y1)
            inside[rows] ^= cx[None, :] < x_cross[:, None]
    return inside


def read_mask(path: str | Path) -> np.ndarray:
    """A mask image file (PNG, any channels and depth) → H×W bool: True where any channel is
    nonzero."""
    path = Path(path)
    data = np.fromfile(path, dtype=np.uint8) if path.is_file() else None
    if data is None:
        raise SleegError(f"mask image not found: {path}")
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise SleegError(f"cannot decode mask image (corrupt or unsupported format): {path}")
    return image.reshape(*image.shape[:2], -1).any(axis=2)


def resize_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bool mask → H×W by nearest neighbour on pixel centres (each output pixel takes the mask
    pixel under its centre)."""
    if mask.shape == (height, width):
        return mask
    nearest = cv2.INTER_NEAREST_EXACT
    return cv2.resize(mask.astype(np.uint8), (width, height), interpolation=nearest).astype(bool)


class JudgedArea:
    """Which frame pixels are judged: inside the network's view (crop mode cuts the sides off),
    inside the ROI polygon, outside the ignore mask. The maps of the `cached` most recently used
    frame sizes are kept (a camera sends one size; a stream of ever-new sizes must not grow
    memory without bound: up to H×W bytes per size)."""

    def __init__(
        self,
        roi: Sequence[tuple[float, float]] = (),
        ignore: np.ndarray | None = None,
        size: tuple[int, int] | None = None,
        mode: str = "stretch",
        cached: int = 4,
    ) -> None:
        self.roi, self.ignore, self.size, self.mode = list(roi), ignore, size, mode
        self.cached = cached
        self._maps: OrderedDict[tuple[int, int], np.ndarray | None] = OrderedDict()

    def mask(self, height: int, width: int) -> np.ndarray | None:
        """H×W bool, True where judged; None when every pixel is."""
        key = (height, width)
        if key in self._maps:
            self._maps.move_to_end(key)
        else:
            self._maps[key] = self._compute(height, width)
            while len(self._maps) > self.cached:
                self._maps.popitem(last=False)
        return self._maps[key]

    def _compute(self, height: int, width: int) -> np.ndarray | None:
        judged = np.ones((height, width), dtype=bool)
        if self.size is not None and self.mode == "crop":
            view = fit_frame((height, width), self.size, self.mode).src
            judged[:] = False
            judged[view.y : view.y + view.height, view.x : view.x + view.width] = True
        if self.roi:
            judged &= rasterize_polygon(self.roi, height, width)
        if self.ignore is not None:
            judged &= ~resize_mask(self.ignore, height, width)
        return None if judged.all() else judged


def restrict_score(score: np.ndarray, judged: np.ndarray | None) -> np.ndarray:
    """The score map with every pixel outside the judged area set to the lowest judged score (the
    map's lowest when nothing is judged), so it never stands out there."""
    if judged is None:
        return score
    lowest = score[judged].min() if judged.any() else score.min()
    return np.where(judged, score, lowest).astype(score.dtype, copy=False)
