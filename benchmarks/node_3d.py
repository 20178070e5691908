"""Per-frame cost of the node's metric outputs (obstacles in metres, anomaly/points,
anomaly/markers) on the node's own code path, on the CPU.

The publishing thread's work for the 3D outputs is timed as the node runs it
(`NodeStages._metric_outputs`: the camera's geometry from the kept camera_info and depth Image
messages, `locate_obstacles`, `anomaly_points`, the messages built) plus the serialisation of
each message (what `publish` adds before DDS), for a frame of 1024×512 and 2048×1024 with 5 and
20 obstacles (upright boxes on the road seen by Cityscapes' published camera; a depth image of
the boxes' faces and the road). Rows: the obstacles without geometry (no camera_info: what a node
without calibration does), with the ground model, with depth, then with markers and points
added. `find_obstacles` and the model are not counted (the node runs them either way); the
geometry library alone is measured by benchmarks/geometry_speed.py.

    python benchmarks/node_3d.py --out /tmp/node_3d.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
from rclpy.logging import get_logger
from rclpy.serialization import serialize_message
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from sleeg_core.eval.obstacles import find_obstacles
from sleeg_core.projection.camera import Pose
from sleeg_ros.camera_geometry import CameraInputs, ParameterPoses
from sleeg_ros.cameras import Camera
from sleeg_ros.outputs import OUTPUT_NAMES
from sleeg_ros.parameters import PARAMS
from sleeg_ros.scheduler import Frame, Job
from sleeg_ros.stages import NodeStages

CITYSCAPES_K = (2262.52, 0.0, 1096.98, 0.0, 2265.30, 513.137, 0.0, 0.0, 1.0)  # at 2048×1024
CITYSCAPES_POSE = [1.7, 0.1, 1.22, 0.0, 0.038, -0.0195]  # x y z roll pitch yaw
SIZES = {"1024x512": (512, 1024), "2048x1024": (1024, 2048)}
ROWS = {  # row name → (wanted outputs, camera_info given, use_depth)
    "obstacles, no camera_info": (("obstacles",), False, False),
    "obstacles, ground": (("obstacles",), True, False),
    "obstacles, depth": (("obstacles",), True, True),
    "obstacles + markers, depth": (("obstacles", "markers"), True, True),
    "obstacles + markers + points, depth": (("obstacles", "markers", "points"), True, True),
}


def scene(size: tuple[int, int], n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A score map with `n` boxes standing on the lower half of the frame (score 1, else 0) and a
    16UC1 depth image: 25 m below the middle row (the road), each box's face nearer."""
    h, w = size
    rng = np.random.default_rng(seed)
    score = np.zeros(size, np.float32)
    depth = np.zeros(size, np.uint16)
    depth[h // 2 :] = 25_000
    for i in range(n):
        bh, bw = int(rng.integers(h // 40, h // 8)), int(rng.integers(w // 80, w // 20))
        bottom = int(rng.integers(h // 2 + bh, h - 1))
        left = int(rng.integers(0, w - bw))
        score[bottom - bh : bottom, left : left + bw] = 1.0
        depth[bottom - bh : bottom, left : left + bw] = 8_000 + 1_000 * i
    return score, depth


def messages(size: tuple[int, int], depth: np.ndarray) -> tuple[CameraInfo, Image]:
    """camera_info (Cityscapes' K scaled to `size`) and the depth Image, stamped 0."""
    h, w = size
    s = w / 2048
    k = [v * s for v in CITYSCAPES_K]
    k[8] = 1.0
    info = CameraInfo(width=w, height=h, k=k)
    image = Image(height=h, width=w, encoding="16UC1", step=2 * w, data=depth.tobytes())
    return info, image


def stages(params: dict) -> tuple[NodeStages, Camera]:
    camera = Camera("", "raw", Image, "/cam/image", "status", "hw", threshold=0.5)
    camera.inputs = CameraInputs()
    poses = ParameterPoses({"": Pose.from_values(CITYSCAPES_POSE)})
    stage = NodeStages([camera], None, params.__getitem__, get_logger("bench"), "pad", poses)
    return stage, camera


def time_row(args, size, n, want, with_info, use_depth) -> dict:
    """Median and p95 ms of the metric outputs (+ serialisation) of one frame."""
    params = {p.name: p.default for p in PARAMS} | {"use_depth": use_depth}
    params["points_budget"] = args.budget
    stage, camera = stages(params)
    score, depth = scene(size, n)
    mask, obstacles = find_obstacles(score, 0.5)
    info, depth_msg = messages(size, depth)
    if with_info:
        camera.inputs.on_info(info)
    camera.inputs.on_depth(depth_msg)
    header = Header(frame_id="cam")
    job = Job("", Frame(Image(header=header), 0.0), 0.0)
    job.want = {name: name in want for name in OUTPUT_NAMES}
    times, cpu = [], []
    for i in range(args.repeat + 2):
        t0, c0 = time.perf_counter(), time.process_time()
        values = stage._metric_outputs(job, camera, header, score, mask, obstacles)
        for msg in values.values():
            serialize_message(msg)
        if i >= 2:  # warm-up
            times.append((time.perf_counter() - t0) * 1e3)
            cpu.append((time.process_time() - c0) * 1e3)
    methods = sorted({o.method for o in values["obstacles"].obstacles})
    return {
        "median_ms": round(statistics.median(times), 3),
        "p95_ms": round(float(np.percentile(times, 95)), 3),
        "cpu_median_ms": round(statistics.median(cpu), 3),  # all threads: robust to a busy host
        "obstacles": len(obstacles),
        "methods": methods,
        "points": values["points"].width if "points" in values else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--budget", type=int, default=5000, help="points_budget")
    parser.add_argument("--obstacles", type=int, nargs="+", default=[5, 20])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    machine = platform.processor() or platform.machine()
    results = {"machine": machine, "load_average": os.getloadavg(), "rows": []}
    print(f"{'size':10} {'n':>3} {'row':38} {'median ms':>10} {'p95 ms':>8} {'CPU ms':>8}")
    for size_name, size in SIZES.items():
        for n in args.obstacles:
            for row, (want, with_info, use_depth) in ROWS.items():
                got = time_row(args, size, n, want, with_info, use_depth)
                results["rows"].append({"size": size_name, "n": n, "row": row, **got})
                print(
                    f"{size_name:10} {n:3d} {row:38} {got['median_ms']:10.2f} {got['p95_ms']:8.2f} "
                    f"{got['cpu_median_ms']:8.2f}",
                    flush=True,
                )
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
