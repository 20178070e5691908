"""Test-time averaging of the anomaly scores: the modes, the scales and the node's default.

Torch-free, so that what only needs the names (the node's parameter table, imported by the launch
file) does not load PyTorch.
"""

from sleeg_core.common.errors import SleegError

TTA_MODES = ("none", "flip", "scales")  # test-time augmentation of AnomalySegmenter's scores
TTA_SCALES = (1.0, 0.75, 0.5)  # tta "scales": network input sizes, as factors of the set size
NODE_TTA = "scales"  # the node's and the CLI's default tta (measured: docs/accuracy.md)


def check_tta(mode: str) -> None:
    """SleegError unless `mode` is one of TTA_MODES."""
    if mode not in TTA_MODES:
        raise SleegError(f"unknown tta '{mode}'; choose one of: {', '.join(TTA_MODES)}")
