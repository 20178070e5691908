"""Recalibrate the mask threshold of existing head files and ensemble files without retraining.

Scores evenly spaced normal Cityscapes-train frames with the head as the trainer's calibration
does (`sleeg_core.train.calibration.calibrate`: each frame resized to the calibration size, the
node's test-time averaging) and writes the threshold of the current rule (`calibration.fpr` of
the frames' pixels above it, default `CalibrationConfig`) into the file: `threshold`,
`threshold_rule` and `train_config["calibration"]`. Weights, λ and `score_stats` stay as they
were. An ensemble file (sleeg_core.model.ensemble_file) is scored by its ensemble score, and gets
its `threshold`, `threshold_rule`, `calibration` and `score_stats` (the quantiles of that score on
the same pixels) written; its members' weights are found as everywhere (known names from the
cache or $SLEEG_SHARED).

    python benchmarks/recalibrate.py --data-root ../shared/data models/*.pt
    python benchmarks/recalibrate.py --data-root ../shared/data models/enet_dabnet_sleeg.yaml
    python benchmarks/recalibrate.py --data-root ../shared/data --fpr 0.005 --out /tmp/h.pt \\
        models/enet_cityscapes_sleeg.pt
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import torch

from sleeg_core.common.errors import SleegError
from sleeg_core.data.images import list_images
from sleeg_core.model.ensemble_file import EnsembleFile, is_ensemble_file
from sleeg_core.model.headfile import HeadFile
from sleeg_core.model.inference import load_segmenter
from sleeg_core.train.calibration import calibrate, calibration_rule
from sleeg_core.train.config import CalibrationConfig

WEIGHTS = {  # segmentor → its Cityscapes checkpoint under --data-root (as benchmarks/accuracy.py)
    "enet": "weights/enet_cityscapes/enet.pth",
    "dabnet": "weights/dabnet_cityscapes/DABNet_cityscapes.pth",
}
TRAIN_IMAGES = "cityscapes_train/images"


def recalibrate(
    path: Path, data_root: Path, cal: CalibrationConfig, out: Path, device: str
) -> HeadFile:
    """Write `path`'s head with the threshold of `cal` to `out`; returns the new head file."""
    head_file = HeadFile.load(path)
    if head_file.segmentor not in WEIGHTS:
        raise SleegError(f"{path}: no known weights for segmentor '{head_file.segmentor}'")
    model, _ = load_segmenter(None, data_root / WEIGHTS[head_file.segmentor], path, device)
    frames = list_images(data_root / TRAIN_IMAGES)
    threshold, _ = calibrate(model, frames, cal)
    old = head_file.threshold
    head_file.threshold = threshold
    head_file.threshold_rule = calibration_rule(cal)
    head_file.train_config = {
        **head_file.train_config,
        "calibration": {**dataclasses.asdict(cal), "size": list(cal.size)},
    }
    head_file.save(out)
    print(f"{path.name}: threshold {old:.4f} -> {threshold:.4f} ({head_file.threshold_rule})")
    return head_file


def recalibrate_ensemble(
    path: Path, data_root: Path, cal: CalibrationConfig, out: Path, device: str
) -> EnsembleFile:
    """Write the ensemble file `path` with the threshold and score statistics of `cal` to `out`."""
    model, spec = load_segmenter(None, None, path, device)
    assert isinstance(spec, EnsembleFile)
    threshold, stats = calibrate(model, list_images(data_root / TRAIN_IMAGES), cal)
    old = spec.threshold
    spec.threshold, spec.score_stats = threshold, stats
    spec.threshold_rule = calibration_rule(cal)
    spec.calibration = {**dataclasses.asdict(cal), "size": list(cal.size)}
    spec.save(out)
    print(f"{path.name}: threshold {old:.4f} -> {threshold:.4f} ({spec.threshold_rule})")
    return spec


def recorded_calibration(path: Path) -> dict[str, object]:
    """How a head or ensemble file was calibrated last (empty: never)."""
    if is_ensemble_file(path):
        return EnsembleFile.load(path).calibration
    return HeadFile.load(path).train_config.get("calibration", {})


def main() -> int:
    default = CalibrationConfig()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "heads", nargs="+", type=Path, help="head files or ensemble files to recalibrate"
    )
    parser.add_argument(
        "--data-root", type=Path, required=True, help=f"holds weights/ and {TRAIN_IMAGES}"
    )
    parser.add_argument(
        "--fpr",
        type=float,
        default=default.fpr,
        help=f"share of normal pixels above the threshold (default {default.fpr})",
    )
    parser.add_argument(
        "--frames",
        type=int,
        default=default.frames,
        help=f"training frames scored, evenly spaced (default {default.frames})",
    )
    parser.add_argument(
        "--out", type=Path, help="write here instead of over the file (one head only)"
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: PyTorch's)")
    args = parser.parse_args()
    if args.out and len(args.heads) > 1:
        parser.error("--out takes a single head")
    if not 0 < args.fpr < 1 or args.frames < 1:
        parser.error(f"--fpr must be in (0, 1) and --frames ≥ 1, got {args.fpr}, {args.frames}")
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        for path in args.heads:
            recorded = recorded_calibration(path)
            cal = CalibrationConfig(
                fpr=args.fpr,
                frames=args.frames,
                size=tuple(recorded.get("size", default.size)),
                tta=recorded.get("tta", default.tta),
            )
            write = recalibrate_ensemble if is_ensemble_file(path) else recalibrate
            write(path, args.data_root, cal, args.out or path, args.device)
    except SleegError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
