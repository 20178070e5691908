"""Training crops: sizes, the scale they apply, determinism, and the decoded-frame cache."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from sleeg_core.common.errors import SleegError
from sleeg_core.train.data import AugmentConfig, CropDataset, random_crop, sample_rng


def ramp(height: int, width: int) -> np.ndarray:
    """RGB image whose red channel is the column index and green the row index (mod 256)."""
    ys, xs = np.mgrid[0:height, 0:width]
    return np.stack([xs % 256, ys % 256, np.zeros_like(xs)], -1).astype(np.uint8)


@pytest.mark.parametrize("size", [(100, 200), (1024, 2048), (40, 60), (375, 1242)])
def test_crops_have_the_crop_size_whatever_the_frame(size):
    cfg = AugmentConfig(crop=(64, 128), scale=(0.5, 2.0))
    for slot in range(8):
        crop = random_crop(ramp(*size), cfg, sample_rng(0, 3, slot))
        assert crop.shape == (64, 128, 3) and crop.dtype == np.uint8
        assert crop.flags.c_contiguous


def test_a_crop_is_the_frame_rescaled_by_the_drawn_scale():
    cfg = AugmentConfig(crop=(32, 64), scale=(0.5, 0.5), flip=False, photometric=False)
    crop = random_crop(ramp(200, 250), cfg, np.random.default_rng(1)).astype(int)
    # half scale: neighbouring output columns are two source columns apart, rows likewise
    assert np.all(np.diff(crop[:, :, 0], axis=1) == 2)
    assert np.all(np.diff(crop[:, :, 1], axis=0) == 2)
    up = AugmentConfig(crop=(32, 64), scale=(2.0, 2.0), flip=False, photometric=False)
    crop = random_crop(ramp(200, 250), up, np.random.default_rng(1)).astype(int)
    steps = np.diff(crop[:, :, 0], axis=1)
    assert steps.min() >= 0 and 0.4 < steps.mean() < 0.6  # each source column spans two


def test_same_key_same_crop(tmp_path: Path):
    path = tmp_path / "frame.png"
    cv2.imwrite(str(path), np.random.default_rng(0).integers(0, 256, (90, 160, 3), np.uint8))
    data = CropDataset([path], AugmentConfig(crop=(32, 48)), seed=5)
    assert torch.equal(data[(0, 7, 1)], data[(0, 7, 1)])
    assert not torch.equal(data[(0, 7, 1)], data[(0, 7, 2)])
    assert data[(0, 7, 1)].shape == (3, 32, 48)


@pytest.mark.parametrize("shared", [False, True])
def test_a_shared_distortion_gives_every_crop_of_a_step_the_same_colour(tmp_path: Path, shared):
    path = tmp_path / "grey.png"
    cv2.imwrite(str(path), np.full((90, 160, 3), (60, 120, 180), np.uint8))
    cfg = AugmentConfig(crop=(16, 32), photometric_shared=shared)
    data = CropDataset([path], cfg, seed=3)
    plain = CropDataset([path], AugmentConfig(crop=(16, 32), photometric=False), seed=3)
    colours = [
        [tuple(data[(0, step, slot)][:, 0, 0].tolist()) for slot in range(4)] for step in range(8)
    ]
    same = [len(set(c)) == 1 for c in colours]
    assert all(same) if shared else not all(same)
    assert len({c[0] for c in colours}) > 1  # the distortion still changes from step to step
    assert {tuple(plain[(0, 0, s)][:, 0, 0].tolist()) for s in range(4)} == {(180, 120, 60)}


def test_decoded_frames_are_cached_within_the_budget(tmp_path: Path):
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"f{i}.png")
        cv2.imwrite(str(paths[-1]), np.full((50, 80, 3), 40 * i, np.uint8))
    frame_bytes = 50 * 80 * 3
    data = CropDataset(paths, AugmentConfig(crop=(16, 16)), 0, cache_mb=2.5 * frame_bytes / 2**20)
    for i in range(3):
        data[(i, 0, 0)]
    assert sorted(data.cache) == [0, 1]  # the third frame did not fit
    assert not data.cache[0].flags.writeable  # crops can never write into the cache
    paths[0].unlink()  # a cached frame is not read again
    assert data[(0, 1, 0)].shape == (3, 16, 16)
    uncached = CropDataset(paths[1:], AugmentConfig(crop=(16, 16)), 0)
    uncached[(0, 0, 0)]
    assert uncached.cache == {}
    with pytest.raises(SleegError, match="cache_mb"):
        CropDataset(paths, AugmentConfig(), 0, cache_mb=-1)
