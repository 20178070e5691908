"""The default threshold of a trained head: calibrated on the normal training frames."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from sleeg_core.data.images import read_rgb, to_batch
from sleeg_core.model.inference import AnomalySegmenter
from sleeg_core.train.config import CalibrationConfig


@torch.no_grad()
def calibrate(
    model: AnomalySegmenter, frames: list[Path], cal: CalibrationConfig
) -> tuple[float, dict[str, float]]:
    """(threshold, score statistics) of the 'sleeg' score on `cal.frames` evenly spaced normal
    `frames`, resized to `cal.size` and scored as `sleeg eval` and the node score them (with
    `cal.tta`): the threshold leaves `cal.fpr` of their pixels above it."""
    device = next(model.parameters()).device
    picks = np.linspace(0, len(frames) - 1, min(cal.frames, len(frames))).round().astype(int)
    tta, model.tta = model.tta, cal.tta
    try:
        scores = []
        for i in picks:
            image = cv2.resize(read_rgb(frames[i]), cal.size[::-1], interpolation=cv2.INTER_AREA)
            pred = model(to_batch(image, device), scores=("sleeg",))
            scores.append(pred.scores["sleeg"].flatten().cpu().numpy())
    finally:
        model.tta = tta
    q = np.quantile(np.concatenate(scores), [0.5, 0.9, 0.99, 0.999, 1 - cal.fpr])
    stats = {"normal_p50": q[0], "normal_p90": q[1], "normal_p99": q[2], "normal_p999": q[3]}
    return float(q[4]), {k: float(v) for k, v in stats.items()}


def calibration_rule(cal: CalibrationConfig) -> str:
    """How `calibrate` chose a threshold, in words (a head file's `threshold_rule`)."""
    h, w = cal.size
    return (
        f"{cal.fpr:.2%} of normal training pixels above it ({cal.frames} frames at {w}x{h}, "
        f"tta {cal.tta})"
    )
