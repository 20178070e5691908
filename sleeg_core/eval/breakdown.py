"""Where the false positives are: flagged normal pixels at a threshold, by the segmentor's predicted
class and by image row band, from one pass over a set.

Each image adds its valid pixels to score histograms per (predicted class, row band, label): the
bins of `StreamingMetrics` at `mantissa_bits` (default 6: relative width 2**-6, 32,768 bins, 30 MiB
for 20 classes × 3 bands × 2 labels, constant in the number of images). `at(threshold)` then
counts the pixels with score ≥ threshold: whole bins above it, and of the bin holding it the share
of its score range above the threshold (linear within a bin, exact for scores spread evenly in
it); `Breakdown.bin_error` is the number of normal pixels in those straddled bins, a bound on the
error of the flagged total.

Row bands: far = the top third of the frame's rows, middle, near = the bottom third. Predicted
class: Cityscapes train id at the label's resolution; 255 (no class: outside a crop window) is
"none".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from sleeg_core.common.errors import SleegError
from sleeg_core.data.labels import CITYSCAPES_CLASSES
from sleeg_core.eval.metrics import VOID, Array, score_bins

BANDS: tuple[str, ...] = ("far", "middle", "near")  # top, middle, bottom third of the rows
NO_CLASS = "none"


def _tensor(x: Array) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x))


def row_bands(height: int) -> np.ndarray:
    """Band index (0 far, 1 middle, 2 near) of each of `height` rows: thirds from the top."""
    return np.minimum(np.arange(height) * len(BANDS) // max(height, 1), len(BANDS) - 1)


@dataclass(frozen=True)
class Breakdown:
    """Pixel counts per (class, band) at one threshold; classes = train classes + "none"."""

    threshold: float
    classes: tuple[str, ...]
    normal: np.ndarray  # int64 [class, band]: normal pixels
    flagged: np.ndarray  # float64 [class, band]: normal pixels with score ≥ threshold
    anomaly: np.ndarray  # int64 [class, band]: anomaly pixels
    detected: np.ndarray  # float64 [class, band]: anomaly pixels with score ≥ threshold
    bin_error: float  # normal pixels in the bins holding the threshold (bound on the error)

    def fp_share(self) -> np.ndarray:
        """Per class: its share of all flagged normal pixels."""
        return self.flagged.sum(1) / max(self.flagged.sum(), 1e-12)

    def class_rate(self) -> np.ndarray:
        """Per class: share of its normal pixels flagged (NaN: none)."""
        n = self.normal.sum(1)
        return np.where(n > 0, self.flagged.sum(1) / np.maximum(n, 1), np.nan)

    def band_share(self) -> np.ndarray:
        return self.flagged.sum(0) / max(self.flagged.sum(), 1e-12)

    def band_rate(self) -> np.ndarray:
        n = self.normal.sum(0)
        return np.where(n > 0, self.flagged.sum(0) / np.maximum(n, 1), np.nan)

    def anomaly_share(self) -> np.ndarray:
        """Per class: share of the anomaly pixels predicted as it."""
        return self.anomaly.sum(1) / max(self.anomaly.sum(), 1)

    def as_dict(self) -> dict:
        def by_class(values: np.ndarray) -> dict[str, float]:
            return {c: _num(v) for c, v in zip(self.classes, values, strict=True)}

        def by_band(values: np.ndarray) -> dict[str, float]:
            return {b: _num(v) for b, v in zip(BANDS, values, strict=True)}

        return {
            "threshold": self.threshold,
            "flagged_normal_pixels": float(self.flagged.sum()),
            "normal_pixels": int(self.normal.sum()),
            "bin_error_pixels": self.bin_error,
            "fp_share": by_class(self.fp_share()),
            "class_flagged": by_class(self.class_rate()),
            "band_fp_share": by_band(self.band_share()),
            "band_flagged": by_band(self.band_rate()),
            "anomaly_class_share": by_class(self.anomaly_share()),
            "anomaly_detected_share": by_class(
                self.detected.sum(1) / max(self.detected.sum(), 1e-12)
            ),
        }


def _num(value: float) -> float | None:
    return None if np.isnan(value) else round(float(value), 6)


class FalsePositiveBreakdown:
    """`update(score, label, train_ids)` per image, then `at(threshold)`."""

    def __init__(
        self, classes: tuple[str, ...] = CITYSCAPES_CLASSES, mantissa_bits: int = 6
    ) -> None:
        if not 1 <= mantissa_bits <= 8:
            raise SleegError(f"mantissa_bits must be in 1..8, got {mantissa_bits}")
        self.classes = (*classes, NO_CLASS)
        self.mantissa_bits = mantissa_bits
        self.n_bins = 1 << (9 + mantissa_bits)
        self._slots = len(self.classes) * len(BANDS) * 2
        self._hist: torch.Tensor | None = None  # int64 [slot · n_bins + bin] + a dump bin

    def update(self, score: Array, label: Array, train_ids: Array) -> None:
        """One image: H×W score, label (0/1/255) and predicted train ids."""
        s, y, ids = _tensor(score), _tensor(label), _tensor(train_ids)
        if not s.shape == y.shape == ids.shape or s.dim() != 2:
            raise SleegError(
                f"score, label and train ids must be the same H×W, got {tuple(s.shape)}, "
                f"{tuple(y.shape)}, {tuple(ids.shape)}"
            )
        y, ids = y.to(s.device), ids.to(s.device)
        if self._hist is None:
            self._hist = torch.zeros(self._slots * self.n_bins + 1, dtype=torch.int64)
        n_cls = len(self.classes) - 1
        cls = torch.where(ids.long() < n_cls, ids.long(), torch.full_like(ids.long(), n_cls))
        band = torch.from_numpy(row_bands(s.shape[0])).to(s.device)[:, None]
        slot = (cls * len(BANDS) + band) * 2 + (y == 1).long()
        idx = slot * self.n_bins + score_bins(s, self.mantissa_bits).long()
        idx = idx.masked_fill_(y == VOID, self._slots * self.n_bins).reshape(-1).cpu()
        self._hist.index_add_(0, idx, torch.ones(1, dtype=torch.int64).expand(idx.numel()))

    def _bin_and_share(self, threshold: float) -> tuple[int, float]:
        """The bin holding `threshold` and the share of its score range at or above it."""
        bits = int(np.float32(threshold + 0.0).view(np.int32))
        key = bits ^ 0x7FFFFFFF if bits < 0 else bits  # order-preserving, as `score_bins`
        shift = 23 - self.mantissa_bits
        low = (key >> shift) << shift  # the bin's first key
        return (key >> shift) + (self.n_bins >> 1), 1.0 - (key - low) / (1 << shift)

    def at(self, threshold: float) -> Breakdown:
        """Normal and anomaly pixel counts per class and band, and those with score ≥
        `threshold`."""
        if self._hist is None:
            raise SleegError("no images accumulated: call update() first")
        hist = self._hist[:-1].reshape(len(self.classes), len(BANDS), 2, self.n_bins).numpy()
        b, share = self._bin_and_share(threshold)
        above = hist[..., b + 1 :].sum(-1) + share * hist[..., b]
        return Breakdown(
            threshold=threshold,
            classes=self.classes,
            normal=hist[:, :, 0].sum(-1),
            flagged=above[:, :, 0],
            anomaly=hist[:, :, 1].sum(-1),
            detected=above[:, :, 1],
            bin_error=float(hist[:, :, 0, b].sum()),
        )


def breakdown_table(name: str, b: Breakdown, top: int = 8) -> str:
    """Markdown: the `top` classes by share of false positives, and the three row bands."""
    share, rate, anomaly = b.fp_share(), b.class_rate(), b.anomaly_share()
    total = b.flagged.sum()
    lines = [
        f"#### {name}: false positives at the FPR95 threshold {b.threshold:.4g}",
        "",
        f"{total:,.0f} of {b.normal.sum():,} normal pixels flagged (binning error ≤ "
        f"{b.bin_error:,.0f} pixels, {b.bin_error / max(total, 1):.1%} of them).",
        "",
        "| predicted class | share of FP | its normal pixels flagged | share of obstacle pixels |",
        "|---|---:|---:|---:|",
    ]
    order = np.argsort(-share, kind="stable")[:top]
    lines += [
        f"| {b.classes[i]} | {share[i]:.1%} | {_pct(rate[i])} | {anomaly[i]:.1%} |" for i in order
    ]
    lines += ["", "| rows | share of FP | its normal pixels flagged |", "|---|---:|---:|"]
    lines += [
        f"| {band} | {s:.1%} | {_pct(r)} |"
        for band, s, r in zip(BANDS, b.band_share(), b.band_rate(), strict=True)
    ]
    return "\n".join([*lines, ""])


def _pct(value: float) -> str:
    return "–" if np.isnan(value) else f"{value:.1%}"
