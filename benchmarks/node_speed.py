"""Per-frame cost of the real node over DDS vs the bare model forward, measured in one run.

1. The bare forward: `AnomalySegmenter` (segmentor + head + score) on 1024×512 frames, here.
2. The node (a separate process, started by `sleeg bag eval`) fed the same frames from a bag as
   fast as it accepts them (`--max-rate`), every output subscribed: its own inference and
   non-inference (decode, post-processing, encoding, publishing) times, and end-to-end latency.
   The outputs are received but not written to disk (`--no-record`): on 2 cores the writing
   would take the node's CPU time and be counted as the node's.
3. The same at 1×, 2× and 4× the sustainable rate: frames dropped (not queued), latency p95.

    python benchmarks/node_speed.py --data-root ../shared/data [--head H] --out /tmp/node_speed
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from sleeg_core.data.bags import write_image_bag
from sleeg_core.data.images import list_images, read_rgb, to_batch
from sleeg_core.model.inference import load_segmenter
from sleeg_core.model.tta import NODE_TTA, TTA_MODES

TOPIC = "/camera/image_raw"


def frames(data_root: Path, n: int, size: tuple[int, int]) -> list[np.ndarray]:
    paths = list_images(data_root / "driving")
    images = [cv2.resize(read_rgb(p), size[::-1], interpolation=cv2.INTER_AREA) for p in paths]
    return [images[i % len(images)] for i in range(n)]


def bare_forward_ms(args: argparse.Namespace, images: list[np.ndarray], score: str) -> float:
    model, _ = load_segmenter("enet", args.weights, args.head, args.device)
    model.tta = args.tta  # as the node's
    device = next(model.parameters()).device
    if args.half and device.type == "cuda":  # as the node's half_precision
        model.convert_networks(torch.float16)
    times = []
    for i, image in enumerate(images):
        t0 = time.perf_counter()
        pred = model(to_batch(image, device), scores=(score,))
        pred.train_ids.cpu().numpy(), pred.scores[score].cpu().numpy()
        if i >= 2:  # warm-up
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def bag_eval(args: argparse.Namespace, bag: Path, out: Path, score: str, *mode: str) -> dict:
    params = [f"weights:={args.weights}", "segmentor:=enet", f"device:={args.device}",
              f"score:={score}",
              "inference_width:=1024", "inference_height:=512",
              f"half_precision:={str(args.half).lower()}", f"tta:={args.tta}"]  # fmt: skip
    params += [f"head:={args.head}"] if args.head else ['head:=""', "threshold:=1.5"]
    cmd = [sys.executable, "-m", "sleeg_core.cli", "bag", "eval", "--bag", str(bag),
           "--image-topic", TOPIC, "--no-labels", "--no-record", "--out", str(out),
           *mode]  # fmt: skip
    for p in params:
        cmd += ["-p", p]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return json.loads((out / "report.json").read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_root = Path(os.environ.get("SLEEG_SHARED", "../shared")) / "data"
    parser.add_argument("--data-root", type=Path, default=default_root)
    parser.add_argument("--weights", type=Path, help="default: the shared ENet")
    parser.add_argument("--head", type=Path, help="trained head (default: entropy, no head)")
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--device", default="cpu", help="cpu | cuda (node and bare forward)")
    parser.add_argument("--half", action="store_true", help="fp16 on CUDA (both)")
    parser.add_argument(
        "--tta", choices=TTA_MODES, default=NODE_TTA, help=f"both (default {NODE_TTA}: the node's)"
    )
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    args.weights = args.weights or args.data_root / "weights/enet_cityscapes/enet.pth"
    score = "sleeg" if args.head else "entropy"
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_flush_denormal(True)
    images = frames(args.data_root, args.frames, (512, 1024))
    bare = bare_forward_ms(args, images, score)
    bag = write_image_bag(args.out / "frames_1hz.mcap", {TOPIC: images}, rate_hz=1.0)
    fast = bag_eval(args, bag, args.out / "max_rate", score, "--max-rate")
    node = fast["node_status"]
    per_frame = node["processing_ms_p50"]
    sustainable = 1000.0 / per_frame
    result = {
        "frame_size": "1024x512",
        "device": args.device + ("-fp16" if args.half else ""),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "score": score,
        "threads": torch.get_num_threads(),
        "bare_forward_ms": bare,
        "node_inference_ms": node["inference_ms_p50"],
        "node_other_ms": per_frame - node["inference_ms_p50"],
        "node_over_bare": per_frame / bare,
        "node_overhead_over_inference": per_frame / node["inference_ms_p50"] - 1,
        "e2e_latency_ms_median": fast["latency_ms"]["frame"]["median"],
        "e2e_over_bare": fast["latency_ms"]["frame"]["median"] / bare,
        "sustainable_fps": sustainable,
        "load": {},
    }
    for factor in (1, 2, 4):
        rep = bag_eval(args, bag, args.out / f"rate_{factor}x", score,
                       "--rate", f"{sustainable * factor:.3f}")  # fmt: skip
        st = rep["node_status"]
        result["load"][f"{factor}x"] = {
            "sent": rep["frames"]["sent"],
            "processed": st["processed"],
            "dropped": st["dropped"],
            "latency_ms_median": rep["latency_ms"]["frame"]["median"],
            "latency_ms_p95": rep["latency_ms"]["frame"]["p95"],
        }
    (args.out / "node_speed.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
