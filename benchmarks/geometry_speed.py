"""Cost of the metric geometry per frame against the model's forward, on the CPU, in one run.

Per frame size (1024×512, 2048×1024) and number of obstacles (1, 5, 20), a synthetic frame is
drawn with Cityscapes' published camera: upright boxes 8-45 m ahead on a flat road (their masks
and a depth image: the boxes' faces, the road elsewhere). It times, for the ground path (no
depth) and the depth path, `locate_obstacles` + `anomaly_points` (a --budget point subsample of
the mask, with the score) — what the node adds per frame — and, in the same run, the forward of
the shipped ENet default (ENet + head + score + train ids, eager, as benchmarks/model_speed.py
measures it), and reports their ratio. find_obstacles is not counted (the node ran it before).

    python benchmarks/geometry_speed.py --data-root ../shared/data --out /tmp/geometry_speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from sleeg_core.eval.obstacles import find_obstacles
from sleeg_core.model.inference import load_segmenter
from sleeg_core.projection.camera import CameraGeometry, Intrinsics, Pose
from sleeg_core.projection.locate import locate_obstacles
from sleeg_core.projection.points import anomaly_points

CITYSCAPES_K = (2262.52, 0.0, 1096.98, 0.0, 2265.3017905988554, 513.137, 0.0, 0.0, 1.0)
CITYSCAPES_POSE = (1.7, 0.1, 1.22, 0.0, 0.038, -0.0195)  # x y z roll pitch yaw
SIZES = {"1024x512": (1024, 512), "2048x1024": (2048, 1024)}


def samples(fn, repeat: int, warmup: int = 2) -> list[tuple[float, float]]:
    """(wall, CPU) times in ms of `repeat` calls of fn(), after `warmup` calls. The CPU time is
    this process's (all its threads): on a loaded machine it counts only the work, not the
    waits for a core."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        times.append(((time.perf_counter() - w0) * 1e3, (time.process_time() - c0) * 1e3))
    return times


def medians(times: list[tuple[float, float]]) -> tuple[float, float]:
    """(median wall, median CPU) in ms."""
    return statistics.median(t[0] for t in times), statistics.median(t[1] for t in times)


def box_mask(cam: CameraGeometry, x: float, y: float, width: float, top: float):
    """(mask H×W uint8 0/255 of an upright board facing the camera, x m ahead of it and y m to
    its left, on the ground; the board's mean optical depth)."""
    k, (rotation, t) = cam.intrinsics, cam.pose.optical_to_output()
    corners = [(-width / 2, 0.0), (width / 2, 0.0), (width / 2, top), (-width / 2, top)]
    face = np.array([[t[0] + x, t[1] + y + dy, z] for dy, z in corners])
    optical = (face - t) @ rotation
    u = k.fx * optical[:, 0] / optical[:, 2] + k.cx
    v = k.fy * optical[:, 1] / optical[:, 2] + k.cy
    mask = np.zeros((k.height, k.width), np.uint8)
    cv2.fillConvexPoly(mask, np.round(np.stack([u, v], 1)).astype(np.int32), 255)
    return mask, float(optical[:, 2].mean())


def scene(cam: CameraGeometry, count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(mask H×W uint8 0/255, depth H×W float32 metres) of `count` separate boards on a flat
    road, 8-45 m ahead, 0.4-1.5 m wide, 0.3-1.2 m tall (drawn until `count` fit apart)."""
    rng = np.random.default_rng(seed)
    k, (rotation, t) = cam.intrinsics, cam.pose.optical_to_output()
    v, u = np.mgrid[0 : k.height, 0 : k.width].astype(np.float64)
    a, b, c = rotation[2]  # output-frame z of a pixel's ray per unit optical depth
    rise = a * (u - k.cx) / k.fx + b * (v - k.cy) / k.fy + c
    with np.errstate(divide="ignore"):
        depth = np.where(rise < 0, t[2] / -rise, np.nan)
    mask = np.zeros((k.height, k.width), np.uint8)
    placed = 0
    while placed < count:
        x, y = rng.uniform(8, 45), rng.uniform(-5, 5)
        one, z = box_mask(cam, x, y, rng.uniform(0.4, 1.5), rng.uniform(0.3, 1.2))
        if (cv2.dilate(one, np.ones((3, 3), np.uint8)) & mask).any():
            continue  # touches another: they would be one region
        mask |= one
        depth[one > 0] = z
        placed += 1
    return mask, depth.astype(np.float32)


def geometry_ms(mask, obstacles, cam, depth, score, budget, repeat):
    """(wall, CPU) median ms of locate_obstacles and of anomaly_points on one frame."""
    locate = medians(samples(lambda: locate_obstacles(mask, obstacles, cam, depth), repeat))
    points = medians(samples(lambda: anomaly_points(mask, cam, depth, budget, score), repeat))
    return locate, points


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_root = Path(os.environ.get("SLEEG_SHARED", "../shared")) / "data"
    parser.add_argument("--data-root", type=Path, default=default_root)
    parser.add_argument("--head", default="enet_cityscapes_sleeg")
    parser.add_argument("--sizes", default=",".join(SIZES))
    parser.add_argument("--counts", default="1,5,20", help="obstacles per frame")
    parser.add_argument("--budget", type=int, default=5000, help="points per frame")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, help="JSON file for the results")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    model, _ = load_segmenter(
        None, args.data_root / "weights/enet_cityscapes/enet.pth", args.head, "cpu"
    )
    rows = []
    for size in args.sizes.split(","):
        w, h = SIZES[size]
        cam = CameraGeometry(
            Intrinsics.from_k(CITYSCAPES_K, 2048, 1024).scaled_to(w, h),
            Pose.from_values(CITYSCAPES_POSE),
        )
        images = torch.randint(0, 256, (1, 3, h, w), dtype=torch.uint8)
        forward_runs = max(3, args.repeat // 4)
        forwards = samples(lambda x=images: model(x, scores=("sleeg",)), forward_runs)
        size_rows = []
        for count in (int(c) for c in args.counts.split(",")):
            mask, depth = scene(cam, count, seed=count)
            score = mask.astype(np.float32) / 255
            mask, obstacles = find_obstacles(score, 0.5)
            for path, d in (("ground", None), ("depth", depth)):
                locate, points = geometry_ms(
                    mask, obstacles, cam, d, score, args.budget, args.repeat
                )
                size_rows.append(
                    {
                        "size": size,
                        "obstacles": len(obstacles),
                        "mask_px": int(np.count_nonzero(mask)),
                        "path": path,
                        "locate_ms": locate[0],
                        "points_ms": points[0],
                        "geometry_cpu_ms": locate[1] + points[1],
                    }
                )
        # the forward again after the geometry: the median of both runs, so a change of the
        # machine's load in between affects both sides alike
        forwards += samples(lambda x=images: model(x, scores=("sleeg",)), forward_runs)
        forward, forward_cpu = medians(forwards)
        for row in size_rows:
            row["forward_ms"], row["forward_cpu_ms"] = forward, forward_cpu
            row["ratio"] = (row["locate_ms"] + row["points_ms"]) / forward
            row["cpu_ratio"] = row["geometry_cpu_ms"] / forward_cpu
            print(
                f"{size} {row['obstacles']:3d} obstacles {row['mask_px']:7d} px "
                f"{row['path']:<6} locate {row['locate_ms']:6.2f} ms  "
                f"points {row['points_ms']:6.2f} ms  forward {forward:7.1f} ms  "
                f"ratio {100 * row['ratio']:.2f} %  | CPU time: geometry "
                f"{row['geometry_cpu_ms']:6.2f} ms forward {forward_cpu:7.1f} ms "
                f"ratio {100 * row['cpu_ratio']:.2f} %"
            )
        rows += size_rows
    print(f"load average (1, 5, 15 min) at the end: {os.getloadavg()}")
    if args.out:
        meta = {
            "cpu": platform.processor() or platform.machine(),
            "threads": args.threads,
            "budget": args.budget,
            "torch": torch.__version__,
            "load_average": os.getloadavg(),
        }
        args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
