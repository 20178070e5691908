"""Soak of the real node: many valid and malformed frames over DDS; it must stay up, memory flat.

The node (`anomaly_node`, a separate process, config/anomaly.yaml plus the overrides below) gets
`--frames` frames from this process over DDS on loopback, in its own ROS_DOMAIN_ID. A `--valid`
share of them are valid frames of random size (up to 1024×512; some exactly 1024×512) in random
supported encodings with random row padding; the rest are malformed: unsupported encodings, a
step shorter than a row, data shorter than step×height, zero or tiny sizes, huge declared sizes,
odd-width YUV (raw); corrupt, truncated or empty JPEG/PNG, unsupported formats, too-small
images (`--transport compressed`). Every output is subscribed, so the node decodes and computes
everything. Pacing is closed-loop: after a valid frame the next one waits for its score output
(or `--answer-timeout`), after a malformed one `--bad-gap-ms`, so the node's latest-frame slot
rarely drops anything and its bad-frame count can be compared with what was sent.

The node's RSS (/proc/PID/status VmRSS) is sampled every `--sample-s` seconds. Reported: RSS
after the warm-up (`--warmup` frames) and at the end, growth in MB and MB per 10k frames (end
point and least-squares slope), the node's /diagnostics counts (frames_in, processed, dropped,
bad_frames) against what was sent, and a final valid 1024×512 frame that must be answered on
anomaly/score with its own header. Writes soak.json and summary.txt to `--out`.

    nice -n 15 env OMP_NUM_THREADS=1 python benchmarks/node_soak.py --frames 50000 --out /tmp/soak
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, QoSReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image

from sleeg_core.data.image_msgs import (
    BYTES_PER_PIXEL,
    BadFrameError,
    compressed_to_rgb,
    image_to_rgb,
)
from sleeg_ros.msg import AnomalyObstacleArray
from sleeg_ros.outputs import topic_types

REPO = Path(__file__).resolve().parents[1]
TOPIC = "/soak/image"
MAX_PIXELS = 16777216  # config/anomaly.yaml's max_input_pixels
OUTPUTS = topic_types(status=False)  # topic → message type
UNSUPPORTED = ["16UC1", "32FC1", "8UC3", "rgb16", "bgra16", "nv12", "UYVY", "jpeg", "", "RGB8",
               "bayer_rggb16", "yuv420", "mono8 ", "\x00\xff"]  # fmt: skip
SOAK_SEC = 1000  # header stamp of frame i: (SOAK_SEC, i); the final frame: (FINAL_SEC, 0)
FINAL_SEC = 2000
RELIABLE = QoSProfile(depth=5, reliability=QoSReliabilityPolicy.RELIABLE)


@dataclass
class Made:
    """One generated frame: the message, its kind, and whether the node must reject it."""

    msg: Image | CompressedImage
    kind: str
    bad: bool


class RawFrames:
    """Random sensor_msgs/Image frames, valid or malformed; pixels are slices of one random
    buffer (the content does not matter, only sizes and layouts)."""

    def __init__(self, rng: np.random.Generator, valid_share: float) -> None:
        self.rng, self.valid_share = rng, valid_share
        pixels = rng.integers(0, 256, 1024 * 512 * 4 + 4096, dtype=np.uint8).tobytes()
        self.buffer = pixels + pixels[: 64 * 512]  # the largest: rgba8 1024 wide + 64 B padding

    def _data(self, n: int) -> bytes:
        start = int(self.rng.integers(0, 4096))
        return self.buffer[start : start + n]

    def _image(self, w: int, h: int, encoding: str, step: int, nbytes: int) -> Image:
        return Image(width=w, height=h, encoding=encoding, step=step, data=self._data(nbytes))

    def valid(self) -> Made:
        rng = self.rng
        if rng.random() < 0.15:
            w, h, enc = 1024, 512, "rgb8"
        else:
            w, h = int(rng.integers(4, 513)) * 2, int(rng.integers(8, 513))
            enc = str(rng.choice(list(BYTES_PER_PIXEL)))
        c = BYTES_PER_PIXEL[enc]
        step = w * c + (int(rng.integers(1, 65)) if rng.random() < 0.3 else 0)
        msg = self._image(w, h, enc, step, step * h)
        msg.is_bigendian = int(rng.random() < 0.5) if enc == "mono16" else 0
        return Made(msg, f"valid_{enc}", False)

    def malformed(self) -> Made:
        rng = self.rng
        kind = str(rng.choice(["encoding", "step", "truncated", "zero", "huge", "tiny", "odd_yuv"]))
        w, h = int(rng.integers(8, 1025)), int(rng.integers(8, 513))
        enc = str(rng.choice(["rgb8", "bgr8", "mono8", "mono16", "bayer_grbg8"]))
        c = BYTES_PER_PIXEL[enc]
        if kind == "encoding":
            msg = self._image(w, h, str(rng.choice(UNSUPPORTED)), w * 3, w * 3 * h)
        elif kind == "step":  # a row shorter than width × bytes per pixel
            msg = self._image(w, h, enc, int(rng.integers(0, w * c)), w * c * h)
        elif kind == "truncated":  # data shorter than step × height
            msg = self._image(w, h, enc, w * c, int(rng.integers(0, w * c * h)))
        elif kind == "zero":
            zw, zh = [(0, 0), (0, h), (w, 0)][int(rng.integers(0, 3))]
            msg = self._image(zw, zh, enc, zw * c, int(rng.integers(0, 2)) * 64)
        elif kind == "huge":  # declared far larger than max_input_pixels, little data
            hw, hh = [(100000, 100000), (4097, 4097), (2**31, 2**31), (2**32 - 1, 9)][
                int(rng.integers(0, 4))
            ]
            msg = self._image(hw, hh, enc, min(hw * c, 2**32 - 1), int(rng.integers(0, 4096)))
        elif kind == "tiny":  # a side under MIN_SIDE (8), data complete
            tw, th = [(int(rng.integers(1, 8)), h), (w, int(rng.integers(1, 8)))][
                int(rng.integers(0, 2))
            ]
            msg = self._image(tw, th, enc, tw * c, tw * c * th)
        else:  # yuv422 needs an even width
            ow = w | 1
            msg = self._image(ow, h, str(rng.choice(["yuv422", "yuv422_yuy2"])), ow * 2, ow * 2 * h)
        return Made(msg, f"bad_{kind}", True)

    def make(self) -> Made:
        return self.valid() if self.rng.random() < self.valid_share else self.malformed()


class CompressedFrames:
    """Random CompressedImage frames from pools encoded once: valid JPEG/PNG of random sizes and
    malformed payloads (corrupt, truncated, empty, unsupported format, too small); each pool
    entry is classified by the node's own decoder, so what counts as bad is exact."""

    def __init__(self, rng: np.random.Generator, valid_share: float) -> None:
        self.rng, self.valid_share = rng, valid_share
        self.good: list[Made] = []
        self.bad: list[Made] = []
        for i in range(48):
            w, h = (
                (1024, 512)
                if i % 8 == 0
                else (int(rng.integers(8, 1025)), int(rng.integers(8, 513)))
            )
            image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            image = cv2.GaussianBlur(image, (0, 0), 3)  # compresses like a photo, not noise
            fmt = "jpeg" if i % 2 else "png"
            data = cv2.imencode(f".{'jpg' if fmt == 'jpeg' else 'png'}", image)[1].tobytes()
            self._add(data, fmt, "valid_" + fmt)
            cut = int(rng.integers(0, len(data)))
            self._add(data[:cut], fmt, "bad_truncated")
            corrupt = bytearray(data)
            corrupt[:64] = rng.integers(0, 256, min(64, len(corrupt)), dtype=np.uint8).tobytes()
            self._add(bytes(corrupt), fmt, "bad_corrupt_header")
            self._add(rng.integers(0, 256, cut, dtype=np.uint8).tobytes(), fmt, "bad_random")
            self._add(data, str(rng.choice(["bmp", "tiff", "rgb8", "h264"])), "bad_format")
        small = cv2.imencode(".png", np.zeros((4, 64, 3), np.uint8))[1].tobytes()
        self._add(small, "png", "bad_tiny")
        self._add(b"", "jpeg", "bad_empty")

    def _add(self, data: bytes, fmt: str, kind: str) -> None:
        msg = CompressedImage(format=fmt, data=data)
        try:
            compressed_to_rgb(msg, MAX_PIXELS)
            bad = False
        except BadFrameError:
            bad = True
        if bad != kind.startswith("bad_"):  # e.g. a truncated JPEG decodes (grey rest)
            kind = ("bad_from_" if bad else "valid_from_") + kind.split("_", 1)[1]
        (self.bad if bad else self.good).append(Made(msg, kind, bad))

    def make(self) -> Made:
        pool = self.good if self.rng.random() < self.valid_share else self.bad
        return pool[int(self.rng.integers(0, len(pool)))]


def rss_mb(pid: int) -> float | None:
    """VmRSS of process `pid` in MB (None once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


class Sampler(threading.Thread):
    """RSS of the node every `period` s, with the number of frames sent at that moment."""

    def __init__(self, pid: int, period: float) -> None:
        super().__init__(daemon=True)
        self.pid, self.period = pid, period
        self.sent = 0
        self.samples: list[tuple[float, int, float]] = []  # (s since start, frames sent, MB)
        self.done = threading.Event()
        self.t0 = time.monotonic()

    def run(self) -> None:
        while not self.done.is_set():
            mb = rss_mb(self.pid)
            if mb is not None:
                self.samples.append((round(time.monotonic() - self.t0, 2), self.sent, mb))
            self.done.wait(self.period)


class Soak:
    """This process's participant: the input publisher and a subscriber of every output."""

    def __init__(self, domain_id: int, compressed: bool) -> None:
        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node("sleeg_soak", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        kind, topic = (CompressedImage, TOPIC + "/compressed") if compressed else (Image, TOPIC)
        self.pub = self.node.create_publisher(kind, topic, qos_profile_sensor_data)
        self.received: Counter[str] = Counter()
        self.last_score: Image | None = None
        self.status: dict[str, str] = {}
        self.statuses = 0
        self.subs = [
            self.node.create_subscription(t, name, lambda m, n=name: self._got(n, m), RELIABLE)
            for name, t in OUTPUTS.items()
        ]
        self.subs.append(
            self.node.create_subscription(DiagnosticArray, "/diagnostics", self._diag, RELIABLE)
        )

    def _got(self, name: str, msg: Image | AnomalyObstacleArray) -> None:
        self.received[name] += 1
        if name == "anomaly/score":
            self.last_score = msg

    def _diag(self, msg: DiagnosticArray) -> None:
        for s in msg.status:
            if s.name.startswith("sleeg_anomaly:"):
                self.status = {kv.key: kv.value for kv in s.values}
                self.statuses += 1

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Spin until `predicate()` or `timeout` s; whether it came true."""
        end = time.monotonic() + timeout
        while True:
            if predicate():
                return True
            if time.monotonic() >= end:
                return False
            self.executor.spin_once(timeout_sec=min(0.01, max(0.0, end - time.monotonic())))

    def spin(self, seconds: float) -> None:
        self.wait_for(lambda: False, seconds)

    def answered(self, sec: int, nanosec: int) -> bool:
        s = self.last_score
        return s is not None and (s.header.stamp.sec, s.header.stamp.nanosec) == (sec, nanosec)

    def matched(self) -> bool:
        return self.pub.get_subscription_count() > 0 and all(
            s.get_publisher_count() > 0 for s in self.subs
        )

    def next_status(self, timeout: float = 10.0) -> dict[str, str]:
        n = self.statuses
        self.wait_for(lambda: self.statuses > n, timeout)
        return dict(self.status)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


# --tracemalloc: the node runs under tracemalloc; every `every` s the allocation sites that grew
# most since the first snapshot (taken `every` s after start-up) go to `out`
TRACEMALLOC = """
import sys, threading, time, tracemalloc
tracemalloc.start(8)
def watch():
    time.sleep({every})
    base = tracemalloc.take_snapshot()
    while True:
        time.sleep({every})
        top = tracemalloc.take_snapshot().compare_to(base, "traceback")[:8]
        with open({out!r}, "w") as f:
            for stat in top:
                f.write(f"{{stat.size_diff / 2**20:+.2f}} MB {{stat.count_diff:+d}} blocks\\n")
                f.writelines(f"    {{line}}\\n" for line in stat.traceback.format())
threading.Thread(target=watch, daemon=True).start()
from sleeg_ros.anomaly_node import main
sys.exit(main(sys.argv[1:]))
"""


def start_node(args: argparse.Namespace, env: dict[str, str], log: Path) -> subprocess.Popen:
    """The real `anomaly_node` with config/anomaly.yaml and the soak's overrides."""
    head = args.head or '""'
    params = [f"weights:={args.weights}", f"score:={args.score}", f"head:={head}",
              "device:=cpu", "cpu_threads:=1", f"inference_width:={args.size[0]}",
              f"inference_height:={args.size[1]}", f"image_transport:={args.transport}",
              f"threshold:={args.threshold}", *args.param]  # fmt: skip
    code = "import sys; from sleeg_ros.anomaly_node import main; sys.exit(main(sys.argv[1:]))"
    if args.tracemalloc:
        code = TRACEMALLOC.format(out=str(args.out / "tracemalloc.txt"), every=args.tracemalloc)
    cmd = [sys.executable, "-c", code, "--ros-args", "--params-file",
           str(REPO / "config/anomaly.yaml"), "-r", f"image:={TOPIC}"]  # fmt: skip
    for p in params:
        cmd += ["-p", p]
    return subprocess.Popen(cmd, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def slope_per_10k(samples: list[tuple[float, int, float]]) -> float:
    """Least-squares RSS slope in MB per 10k frames sent (NaN with fewer than 3 samples)."""
    if len(samples) < 3 or samples[-1][1] == samples[0][1]:
        return float("nan")
    frames = np.array([s[1] for s in samples], dtype=float)
    mb = np.array([s[2] for s in samples])
    return float(np.polyfit(frames, mb, 1)[0] * 1e4)


def accounting(sent: int, bad_sent: int, final: dict, status: dict[str, str]) -> dict:
    """Where the malformed frames went: every frame the node received was processed, counted bad
    or dropped from its latest-frame slot (frames_in = processed + bad_frames + dropped); the
    rest were lost between the processes (best effort)."""
    counts = {
        k: int(status.get(k, -1)) for k in ("frames_in", "processed", "dropped", "bad_frames")
    }
    published = sent + final.get("published", 0)
    return {
        "published": published,
        "lost_in_transport": published - counts["frames_in"],
        "node_balance_ok": counts["frames_in"]
        == counts["processed"] + counts["bad_frames"] + counts["dropped"],
        "bad_sent_minus_counted": bad_sent - counts["bad_frames"],
    }


def final_frame(soak: Soak, compressed: bool, timeout: float = 60.0) -> dict:
    """A valid 1024×512 frame, published (again every second) until its score output comes back:
    whether it did, and whether the output's header is the frame's."""
    rgb = cv2.GaussianBlur(np.random.default_rng(7).integers(0, 256, (512, 1024, 3), np.uint8),
                           (0, 0), 3)  # fmt: skip
    if compressed:
        msg = CompressedImage(format="jpeg", data=cv2.imencode(".jpg", rgb)[1].tobytes())
    else:
        msg = Image(width=1024, height=512, encoding="rgb8", step=1024 * 3, data=rgb.tobytes())
    msg.header.stamp.sec, msg.header.frame_id = FINAL_SEC, "soak_final"
    t0 = time.monotonic()
    ok, published = False, 0
    while not ok and time.monotonic() - t0 < timeout:
        soak.pub.publish(msg)
        published += 1
        ok = soak.wait_for(lambda: soak.answered(FINAL_SEC, 0), 1.0)
    score = soak.last_score
    return {
        "answered": ok,
        "published": published,
        "seconds": round(time.monotonic() - t0, 3),
        "header_stamp": [score.header.stamp.sec, score.header.stamp.nanosec] if ok else None,
        "header_frame_id": score.header.frame_id if ok else None,
        "header_matches": ok and score.header.frame_id == "soak_final",
        "score_size": [score.width, score.height] if ok else None,
        "score_encoding": score.encoding if ok else None,
    }


def check_generator(maker: RawFrames | CompressedFrames, n: int = 300) -> None:
    """The node's decoder must agree with the generator's labels (raw: on `n` frames)."""
    if isinstance(maker, CompressedFrames):
        return  # classified by the decoder when the pools were made
    for _ in range(n):
        made = maker.make()
        try:
            image_to_rgb(made.msg, MAX_PIXELS)
            bad = False
        except BadFrameError:
            bad = True
        assert bad == made.bad, f"{made.kind} decoded as {'bad' if bad else 'valid'}"


def run(args: argparse.Namespace) -> dict:
    compressed = args.transport == "compressed"
    rng = np.random.default_rng(args.seed)
    maker = CompressedFrames(rng, args.valid) if compressed else RawFrames(rng, args.valid)
    check_generator(maker)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env |= {k: v for k, v in (kv.split("=", 1) for kv in args.node_env)}
    proc = start_node(args, env, args.out / "node.log")
    soak = Soak(args.domain_id, compressed)
    sampler = Sampler(proc.pid, args.sample_s)
    result: dict = {}
    try:
        if not soak.wait_for(lambda: soak.matched() or proc.poll() is not None, 300):
            raise RuntimeError("the node never matched the soak's topics")
        if proc.poll() is not None:
            raise RuntimeError(f"the node exited ({proc.returncode}): see {args.out}/node.log")
        soak.spin(2.0)  # a best-effort reader may miss the first samples right after matching
        sampler.start()
        sent: Counter[str] = Counter()
        unanswered = 0
        answer_ms: list[float] = []
        t0 = time.monotonic()
        for i in range(args.frames):
            made = maker.make()
            made.msg.header.stamp.sec, made.msg.header.stamp.nanosec = SOAK_SEC, i
            soak.pub.publish(made.msg)
            sent[made.kind] += 1
            sampler.sent = i + 1
            if made.bad:
                soak.spin(args.bad_gap_ms / 1e3)
            else:
                t1 = time.monotonic()
                if soak.wait_for(lambda i=i: soak.answered(SOAK_SEC, i), args.answer_timeout):
                    answer_ms.append((time.monotonic() - t1) * 1e3)
                else:
                    unanswered += 1
            if (i + 1) % args.log_every == 0:
                print(f"{i + 1} frames, {time.monotonic() - t0:.0f} s, node RSS "
                      f"{rss_mb(proc.pid) or 0:.1f} MB, status {soak.status.get('bad_frames')} bad",
                      flush=True)  # fmt: skip
            if proc.poll() is not None:
                break
        duration = time.monotonic() - t0
        soak.spin(2.0)
        alive_after_stream = proc.poll() is None
        final = final_frame(soak, compressed) if alive_after_stream else {"answered": False}
        soak.next_status()
        status = soak.next_status()  # published after the final frame was processed
        sampler.done.set()
        sampler.join()
        samples = sampler.samples
        warm = next((s for s in samples if s[1] >= args.warmup), samples[-1])
        after = [s for s in samples if s[1] >= warm[1]]
        end = samples[-1]
        frames_after = end[1] - warm[1]
        bad_sent = sum(v for k, v in sent.items() if k.startswith("bad_"))
        sent_total = sum(sent.values())
        result = {
            "config": {
                "frames": args.frames,
                "transport": args.transport,
                "valid_share": args.valid,
                "weights": str(args.weights),
                "head": args.head or None,
                "score": args.score,
                "threshold": args.threshold,
                "inference_size": f"{args.size[0]}x{args.size[1]}",
                "node_cpu_threads": 1,
                "bad_gap_ms": args.bad_gap_ms,
                "answer_timeout_s": args.answer_timeout,
                "warmup_frames": args.warmup,
                "sample_s": args.sample_s,
                "outputs_subscribed": [*OUTPUTS, "/diagnostics"],
                "extra_params": args.param,
                "node_env": args.node_env,
                "tracemalloc": bool(args.tracemalloc),
                "domain_id": args.domain_id,
                "seed": args.seed,
            },
            "machine": {
                "cpus": os.cpu_count(),
                "nice": os.nice(0),
                "loadavg_end": os.getloadavg(),
                "loadavg_start": args.loadavg_start,
            },
            "duration_s": round(duration, 1),
            "frames_per_s": round(args.frames / duration, 1),
            "sent": {
                "total": sent_total,
                "valid": sent_total - bad_sent,
                "bad": bad_sent,
                "by_kind": dict(sorted(sent.items())),
            },
            "valid_answered": len(answer_ms),
            "valid_unanswered": unanswered,
            "answer_ms_median": round(float(np.median(answer_ms)), 1) if answer_ms else None,
            "outputs_received": dict(soak.received),
            "node_status_final": status,
            "node_counts": {
                k: int(status[k])
                for k in ("frames_in", "processed", "dropped", "bad_frames")
                if k in status
            },
            "accounting": accounting(sent_total, bad_sent, final, status),
            "node_alive_after_stream": alive_after_stream,
            "final_frame": final,
            "rss_mb": {
                "first": round(samples[0][2], 1),
                "after_warmup": round(warm[2], 1),
                "after_warmup_at_frame": warm[1],
                "end": round(end[2], 1),
                "max": round(max(s[2] for s in samples), 1),
                "growth_after_warmup": round(end[2] - warm[2], 2),
                "per_10k_frames_endpoints": round((end[2] - warm[2]) / frames_after * 1e4, 3)
                if frames_after
                else None,
                "per_10k_frames_fit": round(slope_per_10k(after), 3),
            },
            "rss_samples": samples,
        }
    finally:
        sampler.done.set()
        soak.close()
        alive = proc.poll() is None
        if alive:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        result["node_alive_at_end"] = alive
        result["node_exit_code"] = proc.returncode
    return result


def summary(r: dict) -> str:
    """A few lines for a person."""
    c, s, n, m = r["config"], r["sent"], r["node_counts"], r["rss_mb"]
    f, a = r["final_frame"], r["accounting"]
    return "\n".join([
        f"node soak: {s['total']} frames ({s['valid']} valid, {s['bad']} malformed) over DDS, "
        f"{c['transport']}, in {r['duration_s']} s ({r['frames_per_s']} frames/s)",
        f"node: {c['weights']} score {c['score']} head {c['head']}, inference "
        f"{c['inference_size']}, 1 thread; load average {r['machine']['loadavg_end']}",
        f"node counts: frames_in {n.get('frames_in')} processed {n.get('processed')} dropped "
        f"{n.get('dropped')} bad_frames {n.get('bad_frames')}; malformed sent {s['bad']}, of "
        f"them not counted bad {a['bad_sent_minus_counted']}; published {a['published']} (with "
        f"the final frame's), lost in transport {a['lost_in_transport']}; frames_in = processed"
        f" + bad + dropped: {a['node_balance_ok']}",
        f"valid answered {r['valid_answered']}/{s['valid']} (median {r['answer_ms_median']} ms)",
        f"RSS MB: first {m['first']}, after warm-up ({m['after_warmup_at_frame']} frames) "
        f"{m['after_warmup']}, end {m['end']}, max {m['max']}; growth {m['growth_after_warmup']} MB"
        f" = {m['per_10k_frames_endpoints']} MB/10k frames (fit {m['per_10k_frames_fit']})",
        f"node alive at end: {r['node_alive_at_end']}, exit code {r['node_exit_code']}; final "
        f"1024x512 frame answered: {f['answered']}, header {f.get('header_stamp')} "
        f"'{f.get('header_frame_id')}' matches: {f.get('header_matches')}",
    ])  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=50000)
    parser.add_argument("--valid", type=float, default=0.3, help="share of valid frames")
    parser.add_argument("--transport", choices=["raw", "compressed"], default="raw")
    parser.add_argument("--weights", default="enet_cityscapes", help="node parameter weights")
    parser.add_argument("--head", default="", help="node parameter head ('': none)")
    parser.add_argument("--score", default="entropy", help="node parameter score")
    parser.add_argument("--threshold", type=float, default=1.5,
                        help="mask threshold (mask, obstacles, overlay computed)")  # fmt: skip
    parser.add_argument("--size", type=int, nargs=2, default=(256, 128), metavar=("W", "H"),
                        help="inference_width, inference_height")  # fmt: skip
    parser.add_argument("--param", action="append", default=[], help="more node name:=value")
    parser.add_argument("--node-env", action="append", default=[], help="NAME=VALUE for the node")
    parser.add_argument("--bad-gap-ms", type=float, default=10.0)
    parser.add_argument("--answer-timeout", type=float, default=3.0)
    parser.add_argument("--warmup", type=int, help="frames before the baseline RSS (default 10%%)")
    parser.add_argument("--sample-s", type=float, default=2.0)
    parser.add_argument("--log-every", type=int, default=1000)
    parser.add_argument("--domain-id", type=int, default=101)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tracemalloc", type=float, default=0, metavar="S",
                        help="run the node under tracemalloc, growth report every S s")  # fmt: skip
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    args.warmup = args.frames // 10 if args.warmup is None else args.warmup
    args.loadavg_start = os.getloadavg()
    args.out.mkdir(parents=True, exist_ok=True)
    # this process and the node: DDS on loopback only, in the soak's own domain
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ["ROS_DOMAIN_ID"] = str(args.domain_id)
    result = run(args)
    (args.out / "soak.json").write_text(json.dumps(result, indent=1))
    text = summary(result)
    (args.out / "summary.txt").write_text(text + "\n")
    print(text)
    ok = result["node_alive_at_end"] and result["final_frame"]["answered"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
