"""Component-level metrics of a binary anomaly mask, as SegmentMeIfYouCan reports them, plus the
mask's pixel precision and recall (pure functions and a per-set accumulator).

Per image (Chan et al. 2021, "SegmentMeIfYouCan", and its reference evaluation code): predicted
pixels on void (label 255) are removed first; ground-truth components are the 8-connected
components of label 1, predicted components those of the remaining mask.

- sIoU of a ground-truth component k, with K̂ the predicted components that touch it:
  |k ∩ K̂| / (|k ∪ K̂| − |A|), A = the pixels of K̂ that belong to other ground-truth components
  (a prediction covering two objects is not held against either).
- PPV of a predicted component p: |p ∩ anomaly| / |p|.
- Over a set, at each δ of SIOU_THRESHOLDS (0.25, 0.30, ..., 0.75): TP = ground-truth components
  with sIoU ≥ δ, FN = those below, FP = predicted components with PPV < δ;
  F1(δ) = 2 TP / (2 TP + FN + FP). "mean F1" averages F1(δ) over the eleven δ; sIoU and PPV are
  the means over every component of the set (ground-truth resp. predicted).
- Pixels, pooled over the set's valid pixels: precision = TP / (TP + FP), recall = TP / (TP + FN),
  normal flagged = FP / normal pixels.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from sleeg_core.common.errors import SleegError

SIOU_THRESHOLDS: tuple[float, ...] = tuple(round(0.25 + 0.05 * i, 2) for i in range(11))
NORMAL, ANOMALY, VOID = 0, 1, 255


@dataclass(frozen=True)
class ImageComponents:
    """One image's component and pixel figures."""

    siou: np.ndarray  # float64, one per ground-truth component
    ppv: np.ndarray  # float64, one per predicted component
    tp_pixels: int  # flagged anomaly pixels
    fp_pixels: int  # flagged normal pixels
    fn_pixels: int  # anomaly pixels not flagged
    normal_pixels: int


@dataclass(frozen=True)
class MaskMetrics:
    """A set's component-level and pixel figures of a mask (fractions; None: undefined)."""

    siou: float | None  # mean over ground-truth components (None: there are none)
    ppv: float | None  # mean over predicted components (None: nothing predicted)
    mean_f1: float | None  # F1 averaged over SIOU_THRESHOLDS (None: no components at all)
    precision: float | None  # pixels (None: nothing flagged)
    recall: float | None  # pixels (None: no anomaly pixels)
    normal_flagged: float | None  # share of normal pixels in the mask (None: no normal pixels)
    gt_components: int
    predicted_components: int
    images: int

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def _components(binary: np.ndarray) -> tuple[int, np.ndarray]:
    """(count + 1, H×W int32 component ids, 0 = background) of a bool mask, 8-connected."""
    n, ids = cv2.connectedComponents(binary.astype(np.uint8), connectivity=8, ltype=cv2.CV_32S)
    return n, ids


def image_components(mask: np.ndarray, label: np.ndarray) -> ImageComponents:
    """mask H×W (nonzero = flagged), label H×W (0 normal, 1 anomaly, 255 void) → the image's
    per-component sIoU and PPV and its pixel counts."""
    if mask.shape != label.shape:
        raise SleegError(f"mask shape {mask.shape} differs from label {label.shape}")
    bad = (label != NORMAL) & (label != ANOMALY) & (label != VOID)
    if bad.any():
        raise SleegError(f"labels must be 0, 1 or 255; found {np.unique(label[bad])[:10].tolist()}")
    anomaly = label == ANOMALY
    flagged = (mask != 0) & (label != VOID)
    n_gt, gt = _components(anomaly)
    n_pred, pred = _components(flagged)
    # overlap[g, p]: pixels of ground-truth component g in predicted component p (0: none)
    overlap = np.bincount(
        (gt.ravel().astype(np.int64) * n_pred + pred.ravel()), minlength=n_gt * n_pred
    ).reshape(n_gt, n_pred)
    gt_size = overlap.sum(axis=1)[1:]
    pred_size = overlap.sum(axis=0)[1:]
    inner = overlap[1:, 1:]  # ground-truth components × predicted components
    on_anomaly = inner.sum(axis=0)  # per predicted component: its pixels on any component
    touches = inner > 0
    intersection = inner.sum(axis=1)  # every pixel of k under a prediction is under K̂
    k_hat_size = touches @ pred_size
    other = touches @ on_anomaly - intersection  # pixels of K̂ on other components
    union = k_hat_size + gt_size - intersection - other
    siou = intersection / np.maximum(union, 1)
    ppv = on_anomaly / np.maximum(pred_size, 1)
    return ImageComponents(
        siou=siou.astype(np.float64),
        ppv=ppv.astype(np.float64),
        tp_pixels=int((flagged & anomaly).sum()),
        fp_pixels=int((flagged & (label == NORMAL)).sum()),
        fn_pixels=int((anomaly & ~flagged).sum()),
        normal_pixels=int((label == NORMAL).sum()),
    )


def _ratio(num: float, den: float) -> float | None:
    return float(num / den) if den > 0 else None


def mean_f1(siou: np.ndarray, ppv: np.ndarray) -> float | None:
    """F1 from component counts at each δ of SIOU_THRESHOLDS, averaged (None: no components)."""
    if siou.size + ppv.size == 0:
        return None
    f1 = []
    for delta in SIOU_THRESHOLDS:
        tp = int((siou >= delta).sum())
        fn = siou.size - tp
        fp = int((ppv < delta).sum())
        f1.append(2 * tp / (2 * tp + fn + fp) if tp + fn + fp else 0.0)
    return float(np.mean(f1))


class ComponentMetrics:
    """A set's mask metrics: `update(mask, label)` per image, then `compute()`."""

    def __init__(self) -> None:
        self._siou: list[np.ndarray] = []
        self._ppv: list[np.ndarray] = []
        self._pixels = np.zeros(4, dtype=np.int64)  # tp, fp, fn, normal
        self.images = 0

    def update(self, mask: np.ndarray, label: np.ndarray) -> ImageComponents:
        """Add one image; returns its figures."""
        found = image_components(np.asarray(mask), np.asarray(label))
        self._siou.append(found.siou)
        self._ppv.append(found.ppv)
        self._pixels += (found.tp_pixels, found.fp_pixels, found.fn_pixels, found.normal_pixels)
        self.images += 1
        return found

    def compute(self) -> MaskMetrics:
        if not self.images:
            raise SleegError("no images accumulated: call update() first")
        siou = np.concatenate(self._siou)
        ppv = np.concatenate(self._ppv)
        tp, fp, fn, normal = (int(v) for v in self._pixels)
        return MaskMetrics(
            siou=float(siou.mean()) if siou.size else None,
            ppv=float(ppv.mean()) if ppv.size else None,
            mean_f1=mean_f1(siou, ppv),
            precision=_ratio(tp, tp + fp),
            recall=_ratio(tp, tp + fn),
            normal_flagged=_ratio(fp, normal),
            gt_components=int(siou.size),
            predicted_components=int(ppv.size),
            images=self.images,
        )


def percent(value: float | None) -> str:
    """A fraction as a percentage with one decimal, '–' when undefined."""
    return "–" if value is None or math.isnan(value) else f"{100 * value:.1f}"
