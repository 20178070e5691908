"""How well a head separates pasted pseudo-anomalies from normal pixels on held-out frames.

Pastes patches (fixed seed, the head's training patch config by default) onto frames the head
never saw, scores them with the head, and reports AP / AUROC / FPR95 of pasted (anomaly) vs
untouched (normal) pixels for the SLEEG score, its terms and the segmentor's entropy baseline.

    python benchmarks/pseudo_separation.py --weights ENET.pth --head runs/x/head.pt \\
        --images ../shared/data/driving --out /tmp/separation.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

from sleeg_core.common.config import from_dict
from sleeg_core.common.errors import SleegError
from sleeg_core.data.images import list_images, read_rgb, to_batch
from sleeg_core.eval.metrics import exact_metrics
from sleeg_core.model.inference import load_segmenter
from sleeg_core.train.patch_config import PatchConfig
from sleeg_core.train.patches import render_patches

SCORES = ("sleeg", "tae", "tore", "entropy")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segmentor", default="enet")
    parser.add_argument("--weights", type=Path, required=True)
    parser.add_argument("--head", type=Path, required=True)
    parser.add_argument("--images", type=Path, required=True, help="held-out normal frames")
    parser.add_argument("--size", type=int, nargs=2, default=(512, 1024), metavar=("H", "W"))
    parser.add_argument("--seed", type=int, default=123)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    try:
        model, head_file = load_segmenter(args.segmentor, args.weights, args.head, "cpu")
        patch_cfg = from_dict(PatchConfig, head_file.train_config.get("patches", {}))
        frames = [
            cv2.resize(read_rgb(p), args.size[::-1], interpolation=cv2.INTER_AREA)
            for p in list_images(args.images)
        ]
        if len(frames) < 2:
            raise SleegError(f"need at least 2 frames in {args.images}")
        generator = torch.Generator().manual_seed(args.seed)
        scores: dict[str, list[np.ndarray]] = {s: [] for s in SCORES}
        labels = []
        for i in range(0, len(frames) - 1, 2):  # pairs: each frame gets crops of the other
            patched = render_patches(to_batch(frames[i : i + 2]), generator, patch_cfg)
            pred = model(patched.images, scores=SCORES)
            for s in SCORES:
                scores[s].append(pred.scores[s].numpy().ravel())
            labels.append(patched.pasted.numpy().ravel().astype(np.uint8))
    except SleegError as err:
        print(f"pseudo_separation: error: {err}", file=sys.stderr)
        return 2
    y = np.concatenate(labels)
    results = {s: exact_metrics(np.concatenate(v), y).as_dict() for s, v in scores.items()}
    print(f"{len(frames)} held-out frames, {y.mean():.2%} pasted pixels")
    print(f"{'score':8} {'AP':>7} {'AUROC':>7} {'FPR95':>7}")
    for s, m in results.items():
        print(f"{s:8} {100 * m['ap']:7.2f} {100 * m['auroc']:7.2f} {100 * m['fpr95']:7.2f}")
    if args.out:
        args.out.write_text(json.dumps({"pasted_fraction": float(y.mean()), "scores": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
