"""Cityscapes train ids and their colours (sleeg_core.data.labels)."""

from __future__ import annotations

import numpy as np
import torch

from sleeg_core.data.labels import CITYSCAPES_PALETTE, color_to_train_ids, colorize


def test_colour_round_trip() -> None:
    ids = np.array([[0, 1, 18, 255], [13, 19, 254, 5]], dtype=np.uint8)
    rgb = colorize(ids)
    assert rgb.shape == (2, 4, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[0, 2]) == CITYSCAPES_PALETTE[18]
    assert rgb[0, 3].tolist() == rgb[1, 1].tolist() == rgb[1, 2].tolist() == [0, 0, 0]
    expected = np.where(ids < 19, ids, 255)
    np.testing.assert_array_equal(color_to_train_ids(rgb), expected)
    np.testing.assert_array_equal(colorize(torch.from_numpy(ids).long()), rgb)
    assert colorize(torch.tensor([[-1, 300]])).tolist() == [[[0, 0, 0], [0, 0, 0]]]


def test_unknown_colours_are_void() -> None:
    rgb = np.array([[[128, 64, 128], [111, 74, 0], [128, 64, 129]]], dtype=np.uint8)
    assert color_to_train_ids(rgb).tolist() == [[0, 255, 255]]
