"""Component-level metrics (SegmentMeIfYouCan) and pixel precision/recall of a binary mask, on a
hand-worked example."""

import numpy as np
import pytest

from sleeg_core.common.errors import SleegError
from sleeg_core.eval.components import (
    SIOU_THRESHOLDS,
    ComponentMetrics,
    image_components,
    mean_f1,
)


def example() -> tuple[np.ndarray, np.ndarray]:
    """6×10 frame. Ground truth: A = rows 1-2 × cols 1-2, B = rows 1-2 × cols 5-6 (4 px each);
    void at (5, 0) and (5, 1). Mask: P1 = row 1, cols 1-6 (6 px: 2 on A, 2 on B, 2 normal),
    P2 = (4, 7), (4, 8) (normal), P3 = (5, 0), (5, 1), (5, 2): void removed first, so P3 is the
    single normal pixel (5, 2)."""
    label = np.zeros((6, 10), np.uint8)
    label[1:3, 1:3] = 1
    label[1:3, 5:7] = 1
    label[5, 0:2] = 255
    mask = np.zeros((6, 10), np.uint8)
    mask[1, 1:7] = 255
    mask[4, 7:9] = 255
    mask[5, 0:3] = 255
    return mask, label


def test_the_hand_worked_example():
    """sIoU(A): K̂ = {P1}, |A ∩ K̂| = 2, union = |K̂| + |A| − 2 − (P1's 2 pixels on B) = 6 + 4 − 2
    − 2 = 6, so 2/6 = 1/3; B the same by symmetry. PPV: P1 4/6 = 2/3, P2 0, P3 0.
    Means: sIoU 1/3, PPV (2/3)/3 = 2/9.
    F1(δ): δ = 0.25, 0.30: TP 2, FN 0, FP 2 (P2, P3) → 4/6 = 2/3; δ = 0.35 … 0.65: TP 0, FN 2 →
    0; δ = 0.70, 0.75: TP 0 (and P1 now an FP too) → 0. Mean over the 11 δ: (2 · 2/3)/11 = 4/33.
    Pixels: TP 4 (P1 on A and B), FP 2 + 2 + 1 = 5, FN 8 − 4 = 4 → precision 4/9, recall 1/2;
    normal pixels 60 − 8 − 2 = 50, of which 5 flagged → 1/10."""
    mask, label = example()
    found = image_components(mask, label)
    assert sorted(found.siou) == pytest.approx([1 / 3, 1 / 3])
    assert sorted(found.ppv) == pytest.approx([0, 0, 2 / 3])
    assert (found.tp_pixels, found.fp_pixels, found.fn_pixels) == (4, 5, 4)
    assert found.normal_pixels == 50
    acc = ComponentMetrics()
    acc.update(mask, label)
    m = acc.compute()
    assert m.siou == pytest.approx(1 / 3)
    assert m.ppv == pytest.approx(2 / 9)
    assert m.mean_f1 == pytest.approx(4 / 33)
    assert m.precision == pytest.approx(4 / 9)
    assert m.recall == pytest.approx(1 / 2)
    assert m.normal_flagged == pytest.approx(1 / 10)
    assert (m.gt_components, m.predicted_components, m.images) == (2, 3, 1)


def test_the_thresholds_are_those_of_segmentmeifyoucan():
    assert SIOU_THRESHOLDS == (0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75)


def test_a_perfect_mask_and_an_empty_one():
    """Perfect: every sIoU and PPV 1, F1 1 at every δ. Empty: sIoU 0, no predicted component (PPV
    undefined), F1 = 0 (TP 0, FN 2), nothing flagged (precision undefined), recall 0."""
    _, label = example()
    perfect = ComponentMetrics()
    perfect.update((label == 1).astype(np.uint8), label)
    p = perfect.compute()
    assert (p.siou, p.ppv, p.mean_f1, p.precision, p.recall, p.normal_flagged) == (1, 1, 1, 1, 1, 0)
    empty = ComponentMetrics()
    empty.update(np.zeros_like(label), label)
    e = empty.compute()
    assert (e.siou, e.ppv, e.mean_f1, e.precision, e.recall) == (0, None, 0, None, 0)


def test_a_set_pools_components_and_pixels_over_its_images():
    """The example plus a perfect image: sIoU (1/3 + 1/3 + 1 + 1)/4 = 2/3, PPV (2/3 + 0 + 0 + 1
    + 1)/5 = 8/15; pixels TP 4 + 8, FP 5, FN 4 → precision 12/17, recall 12/16."""
    mask, label = example()
    acc = ComponentMetrics()
    acc.update(mask, label)
    acc.update((label == 1).astype(np.uint8), label)
    m = acc.compute()
    assert m.siou == pytest.approx(2 / 3)
    assert m.ppv == pytest.approx(8 / 15)
    assert m.precision == pytest.approx(12 / 17) and m.recall == pytest.approx(12 / 16)
    assert m.mean_f1 == pytest.approx(mean_f1(np.r_[1 / 3, 1 / 3, 1, 1], np.r_[2 / 3, 0, 0, 1, 1]))


def test_bad_inputs_are_named():
    mask, label = example()
    with pytest.raises(SleegError, match="shape"):
        image_components(mask[:5], label)
    label[0, 0] = 7
    with pytest.raises(SleegError, match="found \\[7\\]"):
        image_components(mask, label)
    with pytest.raises(SleegError, match="no images"):
        ComponentMetrics().compute()
