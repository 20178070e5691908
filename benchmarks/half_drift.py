"""What half precision changes: float16 networks against float32 on real frames.

Every frame of --frames (default: DATA/driving) runs through the same model twice, as the node
runs it (segmentor + head + the head file's SLEEG score + train ids at --size with resize mode pad,
outputs at the frame's size): in float32, and with the networks converted to --dtype
(`AnomalySegmenter.convert_networks`; the scores are still computed in float32). Over all pixels:
the largest and the mean |Δscore|, the share of mask pixels (score ≥ the head file's threshold,
calibrated in float32) that stay equal — the target is ≥ 99.9 % — and of train ids that stay
equal. float16 needs CUDA (the node ignores half_precision on the CPU); on the CPU, `--dtype
bfloat16` runs the same conversion.

    python benchmarks/half_drift.py --data-root ../shared/data --head head.pt --out drift.json
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
from pathlib import Path

import torch

from sleeg_core.data.images import list_images, read_rgb, to_batch
from sleeg_core.deploy.onnx_export import parse_size
from sleeg_core.model.inference import load_segmenter, resolve_device

MASK_TARGET = 0.999  # share of mask pixels that half precision may leave unchanged, at least
SCORE = "sleeg"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_root = Path(os.environ.get("SLEEG_SHARED", "../shared")) / "data"
    parser.add_argument("--data-root", type=Path, default=default_root)
    parser.add_argument("--head", type=Path, required=True, help="trained head file")
    parser.add_argument("--weights", type=Path, help="default: DATA/weights/enet_cityscapes")
    parser.add_argument("--frames", type=Path, help="image folder (default: DATA/driving)")
    parser.add_argument("--size", default="512x1024", help="inference size HxW (the node's)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", choices=("float16", "bfloat16"), default="float16")
    parser.add_argument("--out", type=Path, help="JSON file for the results")
    args = parser.parse_args(argv)
    device, dtype = resolve_device(args.device), getattr(torch, args.dtype)
    if dtype == torch.float16 and device.type != "cuda":
        print(
            "half_drift: float16 inference needs CUDA (the node ignores half_precision on the "
            "CPU); --dtype bfloat16 runs the same conversion on the CPU",
            file=sys.stderr,
        )
        return 2
    weights = args.weights or args.data_root / "weights/enet_cityscapes/enet.pth"
    full, head_file = load_segmenter(None, weights, args.head, str(device))
    threshold = head_file.threshold
    if math.isnan(threshold):
        print(f"half_drift: {args.head} has no calibrated threshold", file=sys.stderr)
        return 2
    low = copy.deepcopy(full).convert_networks(dtype)
    size = parse_size(args.size)
    rows = []
    print(f"{'frame':60} {'max |Δ|':>9} {'mean |Δ|':>9} {'mask eq %':>10} {'ids eq %':>9}")
    for path in list_images(args.frames or args.data_root / "driving"):
        images = to_batch(read_rgb(path), device)
        ref, got = (m(images, scores=(SCORE,), size=size, resize_mode="pad") for m in (full, low))
        a, b = ref.scores[SCORE][0], got.scores[SCORE][0]
        diff = (a - b).abs()
        row = {
            "frame": path.name,
            "pixels": a.numel(),
            "max_abs_diff": diff.max().item(),
            "mean_abs_diff": diff.mean().item(),
            "mask_pixels": int((a >= threshold).sum()),
            "mask_changed": int(((a >= threshold) != (b >= threshold)).sum()),
            "ids_changed": int((ref.train_ids != got.train_ids).sum()),
        }
        rows.append(row)
        print(
            f"{path.name[:60]:60} {row['max_abs_diff']:9.2e} {row['mean_abs_diff']:9.2e} "
            f"{100 - 100 * row['mask_changed'] / row['pixels']:10.4f} "
            f"{100 - 100 * row['ids_changed'] / row['pixels']:9.4f}",
            flush=True,
        )
    pixels = sum(r["pixels"] for r in rows)
    summary = {
        "frames": len(rows),
        "max_abs_diff": max(r["max_abs_diff"] for r in rows),
        "mean_abs_diff": sum(r["mean_abs_diff"] * r["pixels"] for r in rows) / pixels,
        "mask_equal": 1 - sum(r["mask_changed"] for r in rows) / pixels,
        "mask_pixels": sum(r["mask_pixels"] for r in rows),
        "train_ids_equal": 1 - sum(r["ids_changed"] for r in rows) / pixels,
        "mask_target": MASK_TARGET,
    }
    summary["meets_target"] = summary["mask_equal"] >= MASK_TARGET
    print(
        f"{args.dtype} vs float32 on {len(rows)} frames: max |Δscore| {summary['max_abs_diff']:.3g}"
        f", mean {summary['mean_abs_diff']:.3g}; mask pixels equal "
        f"{100 * summary['mask_equal']:.4f} % (target ≥ {100 * MASK_TARGET:g} %: "
        f"{'met' if summary['meets_target'] else 'NOT met'}); train ids equal "
        f"{100 * summary['train_ids_equal']:.4f} %"
    )
    if args.out:
        meta = {
            "dtype": args.dtype,
            "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
            "torch": torch.__version__,
            "head": str(args.head),
            "threshold": threshold,
            "size": list(size),
        }
        args.out.write_text(json.dumps({"meta": meta, "summary": summary, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
