"""ONNX Runtime (CPU) vs PyTorch for segmentor + head + score + train ids, exported by sleeg.

Exports the model at --size with `sleeg_core.deploy.onnx_export`, then times, alternating in one
run, PyTorch's AnomalySegmenter as the node runs it (score + train ids, eager and optionally
torch.compile'd) and an ONNX Runtime CPU session of the exported graph, on one real frame, for
each thread count. Prints medians, the spread and the load average before and after.

Without --head a random head shaped like the CPU-profile ENet head is used (bottleneck4
features, width 32, λ = 0): the same cost as a trained one.

    python benchmarks/export_speed.py --data-root ../shared/data --threads 1 2 --out /tmp/x.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import torch

from sleeg_core.data.images import read_rgb
from sleeg_core.deploy.onnx_export import export_onnx, parse_size
from sleeg_core.model.head import HeadConfig, OoDHead
from sleeg_core.model.headfile import HeadFile
from sleeg_core.model.inference import load_segmenter

FRAME = "driving/frankfurt_000000_000294_leftImg8bit.png"
WEIGHTS = "weights/enet_cityscapes/enet.pth"


def cpu_profile_head(path: Path) -> Path:
    """A random head file shaped like the CPU-profile ENet head."""
    config = HeadConfig(in_channels=64, width=32, depth=3, dropout=0.1)
    HeadFile(
        head_config=config,
        state_dict=OoDHead.from_config(config).state_dict(),
        segmentor="enet",
        segmentor_options={"feature_layer": "bottleneck4"},
        feature_channels=64,
        lam=0.0,
    ).save(path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_root = Path(os.environ.get("SLEEG_SHARED", "../shared")) / "data"
    parser.add_argument("--data-root", type=Path, default=default_root)
    parser.add_argument("--weights", help="segmentor checkpoint (default: the real ENet)")
    parser.add_argument("--head", type=Path, help="head file (default: CPU-profile-like, random)")
    parser.add_argument("--size", default="512x1024", help="H x W")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile'd")
    parser.add_argument("--out", type=Path, help="JSON file for the results")
    args = parser.parse_args(argv)
    size = parse_size(args.size)
    torch.set_flush_denormal(True)
    weights = args.weights or args.data_root / WEIGHTS
    with tempfile.TemporaryDirectory() as work:
        head = args.head or cpu_profile_head(Path(work) / "head.pt")
        model, head_file = load_segmenter(None, weights, head, "cpu")
        onnx_model = export_onnx(model, head_file, Path(work) / "m.onnx", size).read_bytes()
        compiled = load_segmenter(None, weights, head, "cpu")[0] if args.compile else None
    frame = read_rgb(args.data_root / FRAME)
    frame = cv2.resize(frame, size[::-1], interpolation=cv2.INTER_AREA)
    images = torch.from_numpy(frame).permute(2, 0, 1)[None]  # channels-last view, as the node
    array = np.ascontiguousarray(images.numpy())
    if compiled is not None:
        compiled.compile_networks()
    load_before = os.getloadavg()
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(onnx_model, options, ["CPUExecutionProvider"])
        runners = {
            "pytorch": lambda: model(images, scores=("sleeg",)),
            "onnxruntime": lambda s=session: s.run(None, {"images": array}),
        }
        if compiled is not None:
            start = time.perf_counter()
            compiled(images, scores=("sleeg",))
            print(f"torch.compile: {time.perf_counter() - start:.1f} s", flush=True)
            runners["pytorch-compiled"] = lambda: compiled(images, scores=("sleeg",))
        for run in runners.values():  # warm-up
            run()
            run()
        times: dict[str, list[float]] = {name: [] for name in runners}
        for _ in range(args.repeat):  # alternating: each sees the same load
            for name, run in runners.items():
                start = time.perf_counter()
                run()
                times[name].append((time.perf_counter() - start) * 1e3)
        for name, values in times.items():
            q = statistics.quantiles(values, n=4)
            row = {"runtime": name, "threads": threads, "median_ms": statistics.median(values)}
            rows.append({**row, "q1_ms": q[0], "q3_ms": q[2], "runs": len(values)})
            print(
                f"{name:17} threads {threads}: median {row['median_ms']:7.1f} ms "
                f"(quartiles {q[0]:.1f}–{q[2]:.1f}, {len(values)} runs)",
                flush=True,
            )
    load_after = os.getloadavg()
    print(f"load average (1/5/15 min) before {load_before}, after {load_after}")
    meta = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "onnxruntime": ort.__version__,
        "size": args.size,
        "head": str(args.head) if args.head else "random, CPU-profile shape",
        "load_before": load_before,
        "load_after": load_after,
    }
    if args.out:
        args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
