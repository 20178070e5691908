"""Mask clean-up and connected obstacle regions, on hand-made score maps."""

import numpy as np
import pytest

from sleeg_core.eval.obstacles import find_obstacles


def scene() -> np.ndarray:
    score = np.zeros((40, 60), dtype=np.float32)
    score[5:15, 10:30] = 2.0  # 10×20 = 200 px
    score[8, 12] = 5.0  # the maximum, inside the big block
    score[30:34, 40:44] = 1.5  # 4×4 = 16 px
    score[0, 59] = 3.0  # a single speck
    return score


def test_components_largest_first_with_statistics():
    mask, obs = find_obstacles(scene(), threshold=1.0)
    assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 255}
    assert [o.pixel_area for o in obs] == [200, 16, 1]
    big = obs[0]
    assert (big.x, big.y, big.width, big.height) == (10, 5, 20, 10)
    assert big.max_score == pytest.approx(5.0)
    assert big.mean_score == pytest.approx((199 * 2.0 + 5.0) / 200)
    assert (big.centroid_x, big.centroid_y) == pytest.approx((19.5, 9.5))


def test_min_area_and_threshold():
    mask, obs = find_obstacles(scene(), threshold=1.0, min_area=17)
    assert [o.pixel_area for o in obs] == [200]
    assert int((mask > 0).sum()) == 200
    _, obs = find_obstacles(scene(), threshold=1.75)
    assert [o.pixel_area for o in obs] == [200, 1]


def test_opening_removes_specks_keeps_blocks():
    mask, obs = find_obstacles(scene(), threshold=1.0, open_px=3)
    assert mask[0, 59] == 0
    assert obs[0].pixel_area >= 180


def test_empty_mask():
    mask, obs = find_obstacles(np.zeros((8, 8), np.float32), threshold=0.5)
    assert obs == [] and not mask.any()


def test_min_area_near_grows_with_the_square_of_the_lowest_row():
    """Two 4×4 blocks (16 px): one ending on row 9 (needs 0.1 · 10² = 10 px: kept), one ending on
    row 39, the bottom (needs 0.1 · 40² = 160 px: dropped); min_area still applies (17 px drops
    both)."""
    score = np.zeros((40, 60), dtype=np.float32)
    score[6:10, 5:9] = 2.0
    score[36:40, 30:34] = 2.0
    _, obs = find_obstacles(score, 1.0, min_area_near=0.1)
    assert [(o.y, o.pixel_area) for o in obs] == [(6, 16)]
    _, obs = find_obstacles(score, 1.0, min_area=17, min_area_near=0.1)
    assert obs == []
    _, obs = find_obstacles(score, 1.0)
    assert len(obs) == 2
