"""Intervals of pixel metrics over resampled images.

`ImageBootstrap`: per-image histograms of one score (`mantissa_bits` 8 by default: relative
resolution 1/256), for percentile intervals over the dataset's images resampled with
replacement (`image_draws`): the images, not the pixels, are the samples, since neighbouring
pixels of one image are far from independent. Scores given the same draws are paired, so
"score a beats score b in x % of the draws" is a fair comparison on the same resampled sets.
"""

from __future__ import annotations

import numpy as np

from sleeg_core.common.errors import SleegError
from sleeg_core.eval.metrics import (
    Array,
    Fpr95Rule,
    StreamingMetrics,
    ThresholdCounts,
    metrics_from_counts,
)


def image_draws(n_images: int, n_draws: int, seed: int = 0) -> np.ndarray:
    """`n_draws` resamples of `n_images` image indices with replacement (n_draws × n_images)."""
    if n_images < 1 or n_draws < 1:
        raise SleegError(f"bootstrap needs images and draws, got {n_images} and {n_draws}")
    return np.random.default_rng(seed).integers(0, n_images, (n_draws, n_images))


class ImageBootstrap:
    """Per-image histograms of one score: `update()` per image, then `resampled(draws)`.

    Each image is binned as by `StreamingMetrics(mantissa_bits)` and kept as its non-empty bins
    (int32), so memory and the time per draw grow with the images (typically tens of kB each at
    8 bits); a draw sums the drawn images' bins with one `bincount`.
    """

    def __init__(self, mantissa_bits: int = 8) -> None:
        self.mantissa_bits = mantissa_bits
        self._images: list[tuple[np.ndarray, np.ndarray]] = []  # (2·bin + label, count)

    def __len__(self) -> int:
        return len(self._images)

    def update(self, scores: Array, labels: Array, valid_mask: Array | None = None) -> None:
        """Add one image (the checks and void rules of `StreamingMetrics.update`)."""
        acc = StreamingMetrics(self.mantissa_bits)
        acc.update(scores, labels, valid_mask)
        hist = acc.bin_counts()
        keys = np.flatnonzero(hist)
        self._images.append((keys.astype(np.int32), hist[keys].astype(np.int32)))

    def resampled(
        self, draws: np.ndarray, fpr95_rule: Fpr95Rule = "first_ge"
    ) -> tuple[np.ndarray, np.ndarray]:
        """AP and FPR95 of each draw (a row of image indices); NaN for a draw without anomaly
        or without normal pixels."""
        if not self._images:
            raise SleegError("no images accumulated: call update() first")
        if draws.ndim != 2 or draws.size == 0 or draws.min() < 0 or draws.max() >= len(self):
            raise SleegError(f"draws must be rows of image indices in [0, {len(self)})")
        keys = np.concatenate([k for k, _ in self._images])
        counts = np.concatenate([c for _, c in self._images]).astype(np.float64)
        image = np.repeat(np.arange(len(self)), [len(k) for k, _ in self._images])
        used, slot = np.unique(keys, return_inverse=True)  # 2·bin + label, ascending
        bins, column = np.unique(used >> 1, return_inverse=True)
        slot = ((len(bins) - 1 - column[slot]) << 1) | (used[slot] & 1)  # descending bins
        ap, fpr95 = np.full(len(draws), np.nan), np.full(len(draws), np.nan)
        no_thresholds = np.empty(0, np.float32)  # _metrics reads only the counts
        for d, draw in enumerate(draws):
            weight = np.bincount(draw, minlength=len(self))[image] * counts
            hist = np.bincount(slot, weight, minlength=2 * len(bins)).reshape(-1, 2)
            hist = hist[hist.any(axis=1)]  # bins only the undrawn images have: no step
            fps, tps = np.cumsum(hist, axis=0).T.astype(np.int64)
            if tps[-1] and fps[-1]:
                m = metrics_from_counts(ThresholdCounts(no_thresholds, tps, fps), fpr95_rule)
                ap[d], fpr95[d] = m.ap, m.fpr95
        return ap, fpr95


def interval(values: np.ndarray, level: float = 0.9) -> tuple[float, float]:
    """The central `level` percentile interval of bootstrap values (NaN draws left out)."""
    tail = 50 * (1 - level)
    low, high = np.nanpercentile(values, [tail, 100 - tail])
    return float(low), float(high)
