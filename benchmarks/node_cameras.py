"""N cameras in one node process vs one node process per camera, measured in one run.

For N = 1, 2, 4 (`--cameras`): each camera publishes 1024×512 rgb8 frames at `--rate` Hz (more
than the node can take, so throughput is the node's) from this process over DDS (loopback, the
project's config/fastdds.xml), and `anomaly/score` + `anomaly/obstacles` of every camera are
subscribed (outputs nobody reads are not computed). Two set-ups, each given the same cores:
- one process: `cameras:=[cam0, ...]`, one model, frames of all cameras batched per round;
- N processes: one single-camera node per camera (namespace /camK), `cpu_threads` split.
Measured over `--seconds` after a warm-up: total frames/s answered, latency p95 per camera (frame
published → its score received, by header stamp), frames answered per camera (fairness), and the
resident memory of the node process(es) (VmRSS summed; GPU memory from the nodes' /diagnostics
on CUDA). Plus the bare model: one batch of N frames vs N batch-1 passes (`model_batch`).

`--flood` measures fairness under a flooding camera instead, in one 3-camera process: each round
cam1 sends one frame and cam0 a burst of `--burst` frames, cam2 stays silent. A capacity phase
finds the rounds per second the node manages; then rounds are sent at `--flood-load` of that
(default two thirds) and the frames answered per camera, the node's frames_in/dropped counters
per camera (its /diagnostics) and each camera's status level are reported. Per-camera latest-frame
slots keep cam1 at its rate (answered and frames_in ≥ 90 % of sent, ≤ 10 % dropped) while cam0's
bursts overflow its own slot; a slot shared by the cameras loses cam1's frames to cam0's.

    python benchmarks/node_cameras.py --data-root ../shared/data --head enet_cityscapes_sleeg \\
        --out /tmp/node_cameras [--device cuda] [--flood]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from sleeg_core.data.images import to_batch
from sleeg_core.model.inference import load_segmenter
from sleeg_core.model.tta import NODE_TTA, TTA_MODES

REPO = Path(__file__).resolve().parent.parent
NODE_CODE = "import sys; from sleeg_ros.anomaly_node import main; sys.exit(main(sys.argv[1:]))"
SIZE = (512, 1024)  # H, W
OUTPUTS = ("anomaly/score", "anomaly/obstacles")


def test_frames(data_root: Path, n: int) -> list[np.ndarray]:
    """`n` driving frames at 1024×512 (repeated when the folder has fewer)."""
    import cv2

    from sleeg_core.data.images import list_images, read_rgb

    paths = list_images(data_root / "driving")
    images = [cv2.resize(read_rgb(p), SIZE[::-1], interpolation=cv2.INTER_AREA) for p in paths]
    return [images[i % len(images)] for i in range(n)]


def model_batch(args: argparse.Namespace, image: np.ndarray, n: int, reps: int = 5) -> dict:
    """Median ms of one batch of `n` frames vs `n` batch-1 passes (segmentor + head + score)."""
    model, _ = load_segmenter("enet", args.weights, args.head, args.device)
    model.tta = args.tta  # as the nodes'
    device = next(model.parameters()).device
    sync = torch.cuda.synchronize if device.type == "cuda" else lambda: None

    def timed(batch: torch.Tensor, passes: int) -> float:
        times = []
        for i in range(reps + 2):
            sync()
            t0 = time.perf_counter()
            for _ in range(passes):
                model(batch, scores=("sleeg",)).scores["sleeg"].cpu()
            sync()
            if i >= 2:
                times.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(times)

    with torch.inference_mode():
        one = to_batch(image, device)
        batched = timed(to_batch([image] * n, device), 1)
        separate = timed(one, n)
    return {"batch_ms": batched, "separate_ms": separate, "speedup": separate / batched}


def node_command(args: argparse.Namespace, threads: int, *params: str, remap: list[str]) -> list:
    base = [
        f"weights:={args.weights}",
        f"head:={args.head}",
        f"device:={args.device}",
        f"cpu_threads:={threads}",
        "inference_width:=1024",
        "inference_height:=512",
        "status_period_s:=1.0",
        f"tta:={args.tta}",
    ]
    cmd = [sys.executable, "-c", NODE_CODE, "--ros-args", "--params-file"]
    cmd.append(str(REPO / "config" / "anomaly.yaml"))
    for p in (*base, *params):
        cmd += ["-p", p]
    for r in remap:
        cmd += ["-r", r]
    return cmd


def rss_mb(pid: int) -> float:
    """Resident memory of a process (VmRSS, MiB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Feeder:
    """Publishes frames to /camK/image and records when each camera's outputs arrive."""

    def __init__(self, n: int) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, QoSReliabilityPolicy
        from sensor_msgs.msg import Image

        from sleeg_ros.msg import AnomalyObstacleArray

        self.rclpy, self.Image = rclpy, Image
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("sleeg_bench_cameras", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        reliable = QoSProfile(depth=5, reliability=QoSReliabilityPolicy.RELIABLE)
        self.cams = [f"cam{k}" for k in range(n)]
        self.pubs = {
            c: self.node.create_publisher(Image, f"/{c}/image", reliable) for c in self.cams
        }
        self.sent: dict[str, dict[int, float]] = defaultdict(dict)  # camera → stamp → time
        self.answered: dict[str, dict[int, float]] = defaultdict(dict)
        self.gpu_mb: dict[str, float] = {}
        self.statuses: dict[str, tuple[int, dict[str, str]]] = {}  # camera → (level, values)
        self.subs = []
        kinds = {"anomaly/score": Image, "anomaly/obstacles": AnomalyObstacleArray}
        for c in self.cams:
            for out in OUTPUTS:
                callback = (lambda m, c=c: self._answer(c, m)) if out == OUTPUTS[0] else None
                self.subs.append(
                    self.node.create_subscription(
                        kinds[out], f"/{c}/{out}", callback or (lambda m: None), reliable
                    )
                )
        self.subs.append(
            self.node.create_subscription(DiagnosticArray, "/diagnostics", self._status, 10)
        )

    def _answer(self, camera: str, msg) -> None:
        stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
        self.answered[camera].setdefault(stamp, time.monotonic())

    def _status(self, msg) -> None:
        for st in msg.status:
            values = {kv.key: kv.value for kv in st.values}
            if "frames_in" in values:  # name "<node>: /<camera>/image"
                self.statuses[st.name.rsplit("/", 2)[-2]] = (int.from_bytes(st.level), values)
            if "gpu_memory_reserved_mb" in values:
                self.gpu_mb[st.name] = float(values["gpu_memory_reserved_mb"])

    def ready(self) -> bool:
        return all(p.get_subscription_count() > 0 for p in self.pubs.values()) and all(
            s.get_publisher_count() > 0 for s in self.subs[:-1]
        )

    def spin(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.005)

    def run(self, frame: np.ndarray, rate: float, seconds: float, first_stamp: int) -> None:
        """Every camera at `rate` Hz for `seconds` (stamps from `first_stamp` ns, +1 ms)."""
        msg = self.Image(height=frame.shape[0], width=frame.shape[1], encoding="rgb8")
        msg.step, msg.data = frame.strides[0], frame.tobytes()
        start, k = time.monotonic(), 0
        while time.monotonic() - start < seconds:
            stamp = first_stamp + k * 10**6
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 10**9)
            for c in self.cams:
                self.sent[c][stamp] = time.monotonic()
                self.pubs[c].publish(msg)
            k += 1
            self.spin(max(0.0, start + k / rate - time.monotonic()))

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        self.rclpy.shutdown(context=self.context)


def measure(args: argparse.Namespace, frame: np.ndarray, n: int, one_process: bool) -> dict:
    """One set-up for `n` cameras: throughput, latency p95 and frames per camera, memory."""
    cams = [f"cam{k}" for k in range(n)]
    cores = args.threads
    if one_process:
        names = ", ".join(cams)
        cmds = [node_command(args, cores, f"cameras:=[{names}]", remap=[])]
    else:
        per = max(1, cores // n)
        cmds = [node_command(args, per, remap=[f"__ns:=/{c}"]) for c in cams]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    procs = [
        subprocess.Popen(c, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for c in cmds
    ]
    feeder = Feeder(n)
    try:
        end = time.monotonic() + args.startup_timeout
        while not feeder.ready():
            if time.monotonic() > end or any(p.poll() is not None for p in procs):
                raise RuntimeError(f"the node(s) did not come up ({len(procs)} process(es))")
            feeder.spin(0.1)
        feeder.run(frame, args.rate, args.warmup, first_stamp=10**9)
        feeder.spin(2.0)
        feeder.sent.clear()
        feeder.answered.clear()
        feeder.run(frame, args.rate, args.seconds, first_stamp=10**12)
        memory = sum(rss_mb(p.pid) for p in procs)
        feeder.spin(2.0)  # the last frames' outputs
        per_camera = {}
        for c in cams:
            lat = [(feeder.answered[c][s] - t) * 1e3 for s, t in feeder.sent[c].items()
                   if s in feeder.answered[c]]  # fmt: skip
            per_camera[c] = {
                "sent": len(feeder.sent[c]),
                "answered": len(lat),
                "latency_ms_p95": float(np.percentile(lat, 95)) if lat else float("nan"),
            }
        answered = sum(v["answered"] for v in per_camera.values())
        result = {
            "processes": len(procs),
            "threads_per_process": cores if one_process else max(1, cores // n),
            "total_fps": answered / args.seconds,
            "rss_mb": memory,
            "cameras": per_camera,
        }
        if feeder.gpu_mb:
            result["gpu_reserved_mb"] = sum(feeder.gpu_mb.values()) / (n if one_process else 1)
        return result
    finally:
        feeder.close()
        for p in procs:
            p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


LEVELS = {0: "OK", 1: "WARN", 2: "ERROR", 3: "STALE"}


def flood_rounds(feeder: Feeder, frame: np.ndarray, period: float, seconds: float, burst: int,
                 first_stamp: int) -> dict[str, int]:  # fmt: skip
    """Rounds every `period` s for `seconds`: one cam1 frame, then `burst` cam0 frames; cam2
    silent. Frames sent per camera."""
    msg = feeder.Image(height=frame.shape[0], width=frame.shape[1], encoding="rgb8")
    msg.step, msg.data = frame.strides[0], frame.tobytes()
    sent = {"cam0": 0, "cam1": 0, "cam2": 0}
    start, k = time.monotonic(), 0
    while time.monotonic() - start < seconds:
        for camera, n in (("cam1", 1), ("cam0", burst)):
            for j in range(n):
                stamp = first_stamp + k * 10**6 + j
                msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 10**9)
                feeder.sent[camera][stamp] = time.monotonic()
                feeder.pubs[camera].publish(msg)
                sent[camera] += 1
        k += 1
        feeder.spin(max(0.0, start + k * period - time.monotonic()))
    return sent


def rounds_answered(feeder: Feeder) -> int:
    """Rounds with an answer for cam0 or cam1 (a round's stamps share its millisecond)."""
    return len({s // 10**6 for c in ("cam0", "cam1") for s in feeder.answered[c]})


def flood(args: argparse.Namespace, frame: np.ndarray) -> dict:
    """A flooding camera, a steady one and a silent one in one process (see the docstring)."""
    health = ("status_period_s:=0.25", "max_input_age_s:=1.5", "health_window_s:=3.0")
    cmd = node_command(args, args.threads, "cameras:=[cam0, cam1, cam2]", *health, remap=[])
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    feeder = Feeder(3)
    try:
        end = time.monotonic() + args.startup_timeout
        while not feeder.ready():
            if time.monotonic() > end or proc.poll() is not None:
                raise RuntimeError("the node did not come up")
            feeder.spin(0.1)
        flood_rounds(feeder, frame, 0.05, args.warmup, args.burst, first_stamp=10**9)
        feeder.spin(2.0)
        feeder.answered.clear()
        flood_rounds(feeder, frame, 0.05, args.seconds, args.burst, first_stamp=10**12)
        feeder.spin(2.0)
        capacity = rounds_answered(feeder) / args.seconds  # rounds per second the node managed
        before = {c: dict(v) for c, (_, v) in feeder.statuses.items()}
        feeder.answered.clear()
        period = 1.0 / max(args.flood_load * capacity, 1e-3)
        sent = flood_rounds(feeder, frame, period, args.seconds, args.burst, first_stamp=10**13)
        levels = {c: LEVELS.get(level, str(level)) for c, (level, _) in feeder.statuses.items()}
        now = {c: dict(v) for c, (_, v) in feeder.statuses.items()}
        feeder.spin(2.0)  # the last frames' outputs
        cameras = {}
        for c in ("cam0", "cam1", "cam2"):
            counts = {k: int(now[c][k]) - int(before[c][k]) for k in ("frames_in", "dropped")}
            cameras[c] = {
                "sent": sent[c],
                "answered": len(feeder.answered[c]),
                **counts,
                "level": levels[c],
            }
        steady = cameras["cam1"]
        return {
            "burst": args.burst,
            "capacity_rounds_per_s": capacity,
            "sent_rounds_per_s": 1.0 / period,
            "cameras": cameras,
            "steady_camera_kept_its_rate": steady["answered"] >= 0.9 * steady["sent"]
            and steady["frames_in"] >= 0.9 * steady["sent"]
            and steady["dropped"] <= 0.1 * max(steady["frames_in"], 1),
        }
    finally:
        feeder.close()
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_root = Path(os.environ.get("SLEEG_SHARED", "../shared")) / "data"
    parser.add_argument("--data-root", type=Path, default=default_root)
    parser.add_argument("--weights", default="", help="default: the shared ENet")
    parser.add_argument("--head", default="enet_cityscapes_sleeg", help="head file or name")
    parser.add_argument("--device", default="cpu", help="cpu | cuda")
    parser.add_argument(
        "--tta", choices=TTA_MODES, default=NODE_TTA, help=f"nodes and model (default {NODE_TTA})"
    )
    parser.add_argument("--cameras", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--rate", type=float, default=15.0, help="Hz per camera (above capacity)")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured time per set-up")
    parser.add_argument("--warmup", type=float, default=8.0, help="seconds before measuring")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="cores for the nodes")
    parser.add_argument("--startup-timeout", type=float, default=120.0)
    parser.add_argument("--model-only", action="store_true", help="only the bare model batches")
    parser.add_argument("--flood", action="store_true", help="only the flooding-camera fairness")
    parser.add_argument("--burst", type=int, default=4, help="--flood: cam0 frames per round")
    parser.add_argument(
        "--flood-load", type=float, default=2 / 3, help="--flood: rounds sent / node capacity"
    )
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    args.weights = args.weights or str(args.data_root / "weights/enet_cityscapes/enet.pth")
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(REPO / "config" / "fastdds.xml"))
    args.out.mkdir(parents=True, exist_ok=True)
    frame = test_frames(args.data_root, 1)[0]
    result: dict = {
        "frame_size": "1024x512",
        "device": args.device,
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "cores": args.threads,
        "rate_per_camera_hz": args.rate,
        "seconds": args.seconds,
        "model_batch": {},
        "nodes": {},
    }
    torch.set_num_threads(args.threads)
    if args.flood:
        result = {"device": args.device, "cores": args.threads, "flood": flood(args, frame)}
        (args.out / "node_cameras_flood.json").write_text(json.dumps(result, indent=2))
        print(json.dumps(result, indent=2))
        return 0
    for n in args.cameras:
        result["model_batch"][n] = model_batch(args, frame, n)
        print(f"model, {n} frames: {result['model_batch'][n]}", flush=True)
    for n in [] if args.model_only else args.cameras:
        for one in (True, False) if n > 1 else (True,):
            key = f"{n}_cameras_" + ("one_process" if one else f"{n}_processes")
            result["nodes"][key] = measure(args, frame, n, one)
            print(key, json.dumps(result["nodes"][key]), flush=True)
    (args.out / "node_cameras.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
