"""Parity between an exported ONNX graph's outputs and the PyTorch model's.

Train ids ≥ 99.9 % equal (argmax of the full logits vs `upsampled_argmax`, equal up to float
near-ties). Scores: DABNet within 1e-4 of the score range everywhere. ENet's max-unpool puts each
value at its 2×2 window's maximum; where two candidates differ by float rounding (about 1 in 10⁵
windows of real frames), ONNX Runtime's and PyTorch's convolutions can pick different ones, which
changes the score locally: so for ENet ≤ 0.1 % of the pixels may differ by more than 1e-4 of the
range, and none by more than 1e-2 of it (measured on 10 real frames: at most 1.1e-3 of the range
at 256×512, 6.5e-3 at 512×1024, 99.9 % of the pixels within 1.4e-4; 1e-6 when ONNX Runtime's
window positions are used in PyTorch).
"""

from __future__ import annotations

import numpy as np


def check_parity(score, ref_score, ids, ref_ids, unpool: bool) -> None:
    """The module docstring's tolerances (`unpool`: the segmentor max-unpools, as ENet does)."""
    diff = np.abs(score - ref_score)
    scale = float(ref_score.max() - ref_score.min())
    assert score.dtype == np.float32 and ids.dtype == np.uint8
    assert (ids == ref_ids).mean() >= 0.999
    if unpool:
        assert diff.max() <= 1e-2 * scale
        assert (diff > 1e-4 * scale).mean() <= 1e-3
    else:
        assert diff.max() <= 1e-4 * scale
