"""False positives at a threshold by predicted class and row band, on hand-built images."""

import numpy as np
import pytest
import torch

from sleeg_core.common.errors import SleegError
from sleeg_core.eval.breakdown import BANDS, FalsePositiveBreakdown, breakdown_table, row_bands
from sleeg_core.eval.metrics import StreamingMetrics

ROAD, SIDEWALK, SKY = 0, 1, 10


def scene() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """6×4 frame, two rows per band. Predicted: sky on rows 0-1, sidewalk on rows 2-3, road on
    rows 4-5. Scores 0.25 everywhere, except 3.0 at: sky (0, 0) and (1, 1); sidewalk (2, 0);
    road (4, 0), (5, 0), (5, 1). Labels: anomaly at (5, 0) and (5, 1) (predicted road), void at
    (0, 3)."""
    ids = np.full((6, 4), ROAD, np.uint8)
    ids[0:2], ids[2:4] = SKY, SIDEWALK
    score = np.full((6, 4), 0.25, np.float32)
    for r, c in ((0, 0), (1, 1), (2, 0), (4, 0), (5, 0), (5, 1)):
        score[r, c] = 3.0
    label = np.zeros((6, 4), np.uint8)
    label[5, 0:2] = 1
    label[0, 3] = 255
    return score, label, ids


def test_the_hand_built_scene_at_a_threshold_between_the_two_scores():
    """Threshold 1.0 (no pixel in its bin): flagged normal pixels sky 2, sidewalk 1, road 1 (4 in
    all) → shares 1/2, 1/4, 1/4. Normal pixels: sky 8 − 1 void = 7, sidewalk 8, road 8 − 2 = 6 →
    flagged 2/7, 1/8, 1/6. Bands: far (rows 0-1) 2 of 7, middle 1 of 8, near 1 of 6 → shares
    1/2, 1/4, 1/4. Both anomaly pixels are predicted road and detected."""
    acc = FalsePositiveBreakdown()
    acc.update(*scene())
    b = acc.at(1.0)
    assert b.bin_error == 0
    share, rate = b.fp_share(), b.class_rate()
    assert (share[SKY], share[SIDEWALK], share[ROAD]) == pytest.approx((1 / 2, 1 / 4, 1 / 4))
    assert (rate[SKY], rate[SIDEWALK], rate[ROAD]) == pytest.approx((2 / 7, 1 / 8, 1 / 6))
    assert np.isnan(rate[2])  # building: no pixel
    assert b.band_share() == pytest.approx([1 / 2, 1 / 4, 1 / 4])
    assert b.band_rate() == pytest.approx([2 / 7, 1 / 8, 1 / 6])
    assert b.anomaly_share()[ROAD] == 1 and b.detected.sum() == 2
    table = breakdown_table("t", b)
    assert "| sky | 50.0% | 28.6% | 0.0% |" in table and "| near | 25.0% | 16.7% |" in table
    assert set(b.as_dict()["band_fp_share"]) == set(BANDS)


def test_a_threshold_inside_a_bin_counts_the_share_of_its_range_above():
    """Normal scores 1.0 + k/64 for k = 0..15 lie in the bin [1, 1.03125) at 5 mantissa bits
    (16 pixels); threshold 1.015625 is halfway up it: half the bin's pixels are counted (8, as
    in truth), and the bound on the error is the bin's 16 pixels."""
    score = (1.0 + np.arange(16, dtype=np.float32) / 512).reshape(4, 4)
    acc = FalsePositiveBreakdown(mantissa_bits=5)
    acc.update(score, np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint8))
    b = acc.at(1.015625)
    assert b.flagged.sum() == pytest.approx(8) and b.bin_error == 16


def test_torch_inputs_and_unknown_train_ids_count_as_no_class():
    score, label, ids = scene()
    ids[2, 0] = 255  # outside a crop window
    acc = FalsePositiveBreakdown()
    acc.update(torch.from_numpy(score), torch.from_numpy(label), torch.from_numpy(ids))
    b = acc.at(1.0)
    assert b.classes[-1] == "none" and b.flagged[-1].sum() == 1 and b.normal[-1].sum() == 1


def test_row_bands_are_thirds_from_the_top():
    assert row_bands(6).tolist() == [0, 0, 1, 1, 2, 2]
    assert row_bands(7).tolist() == [0, 0, 0, 1, 1, 2, 2]


def test_bad_inputs_are_named():
    score, label, ids = scene()
    with pytest.raises(SleegError, match="same H×W"):
        FalsePositiveBreakdown().update(score, label[:5], ids)
    with pytest.raises(SleegError, match="no images"):
        FalsePositiveBreakdown().at(0.0)


def test_threshold_at_tpr_is_the_first_threshold_reaching_the_target():
    """Anomaly scores 1..20, normal 0.5: TPR ≥ 0.95 first at 19 of 20 flagged, i.e. score ≥ 2."""
    acc = StreamingMetrics()
    scores = np.r_[np.arange(1, 21), np.full(5, 0.5)].astype(np.float32)
    acc.update(scores, np.r_[np.ones(20), np.zeros(5)].astype(np.uint8))
    assert acc.threshold_at_tpr() == 2.0
    assert acc.threshold_at_tpr(0.5) == 11.0  # 10 of 20
