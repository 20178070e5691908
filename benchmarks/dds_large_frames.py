"""Delivery of large sensor_msgs/Image frames between two processes, per Fast DDS set-up.

A publisher process sends `--frames` rgb8 frames at `--rate` Hz to a subscriber process (both
rclpy, best effort, rclpy's sensor-data QoS as the node's input); the subscriber counts the
distinct frames it got. Sizes 1024×512 and 2048×1024; set-ups (publisher / subscriber):

- a: Fast DDS defaults (FASTDDS_DEFAULT_PROFILES_FILE and FASTDDS_BUILTIN_TRANSPORTS unset) /
  config/fastdds.xml (the node as scripts/env.sh starts it);
- b: config/fastdds.xml / config/fastdds.xml;
- c: FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA (no profile file) / config/fastdds.xml;
- d: LARGE_DATA / LARGE_DATA;
- e: Fast DDS defaults, reliable / config/fastdds.xml, reliable (the node with reliable_input);
- f: Fast DDS defaults, reliable / config/fastdds.xml, best effort (the node's default input).

Every other set-up is best effort on both sides.

Both processes: DDS on loopback (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST), their own
ROS_DOMAIN_ID. The publisher starts after the subscriber is up, waits until it has matched it
(and 1 s more), then publishes. Writes dds_large_frames.json and a table to `--out`.

    nice -n 15 python benchmarks/dds_large_frames.py --frames 100 --rate 10 --out /tmp/dds
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
TOPIC = "/dds_bench/image"
SIZES = {"1024x512": (1024, 512), "2048x1024": (2048, 1024)}
PROFILE = str(REPO / "config" / "fastdds.xml")
SIDES = {  # environment of one side: variables set, variables removed
    "default": ({}, ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTDDS_BUILTIN_TRANSPORTS")),
    "fastdds.xml": ({"FASTDDS_DEFAULT_PROFILES_FILE": PROFILE}, ("FASTDDS_BUILTIN_TRANSPORTS",)),
    "LARGE_DATA": (
        {"FASTDDS_BUILTIN_TRANSPORTS": "LARGE_DATA"},
        ("FASTDDS_DEFAULT_PROFILES_FILE",),
    ),
}
SETUPS = {  # name: (publisher side, subscriber side, publisher reliable, subscriber reliable)
    "a": ("default", "fastdds.xml", False, False),
    "b": ("fastdds.xml", "fastdds.xml", False, False),
    "c": ("LARGE_DATA", "fastdds.xml", False, False),
    "d": ("LARGE_DATA", "LARGE_DATA", False, False),
    "e": ("default", "fastdds.xml", True, True),
    "f": ("default", "fastdds.xml", True, False),
}


def qos(reliable: bool):
    """rclpy's sensor-data QoS (best effort, keep last 5), or reliable keep last 5."""
    from rclpy.qos import QoSProfile, QoSReliabilityPolicy, qos_profile_sensor_data

    if not reliable:
        return qos_profile_sensor_data
    return QoSProfile(depth=5, reliability=QoSReliabilityPolicy.RELIABLE)


def side_env(side: str, domain_id: int) -> dict[str, str]:
    """This process's environment changed for one side of a set-up."""
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", PYTHONUNBUFFERED="1")
    env["ROS_DOMAIN_ID"] = str(domain_id)
    env.pop("RMW_FASTRTPS_USE_QOS_FROM_XML", None)
    add, remove = SIDES[side]
    for name in remove:
        env.pop(name, None)
    return env | add


def subscriber(args: argparse.Namespace) -> int:
    """Count distinct frames (by header stamp) until SIGTERM; print JSON."""
    import rclpy
    from sensor_msgs.msg import Image

    rclpy.init(signal_handler_options=rclpy.signals.SignalHandlerOptions.NO)
    node = rclpy.create_node("dds_bench_sub")
    stamps: set[tuple[int, int]] = set()
    latency_ms: list[float] = []
    sizes: set[tuple[int, int]] = set()

    def got(msg: Image) -> None:
        stamps.add((msg.header.stamp.sec, msg.header.stamp.nanosec))
        latency_ms.append((time.time_ns() - int(msg.header.frame_id)) / 1e6)
        sizes.add((msg.width, msg.height))

    node.create_subscription(Image, TOPIC, got, qos(args.reliable))
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    print("ready", flush=True)
    while not stop:
        rclpy.spin_once(node, timeout_sec=0.05)
    print(json.dumps({
        "received": len(stamps),
        "latency_ms_median": float(np.median(latency_ms)) if latency_ms else None,
        "sizes": sorted(sizes),
    }), flush=True)  # fmt: skip
    node.destroy_node()
    rclpy.shutdown()
    return 0


def publisher(args: argparse.Namespace) -> int:
    """Wait for the subscriber, publish `frames` frames at `rate` Hz; print JSON."""
    import rclpy
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("dds_bench_pub")
    pub = node.create_publisher(Image, TOPIC, qos(args.reliable))
    w, h = SIZES[args.size]
    pixels = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    msg = Image(width=w, height=h, encoding="rgb8", step=w * 3, data=pixels.tobytes())
    t0 = time.monotonic()
    while pub.get_subscription_count() == 0 and time.monotonic() - t0 < 30:
        rclpy.spin_once(node, timeout_sec=0.05)
    matched = pub.get_subscription_count() > 0
    time.sleep(1.0)
    start = time.monotonic()
    for i in range(args.frames):
        msg.header.stamp.sec, msg.header.stamp.nanosec = 1, i
        msg.header.frame_id = str(time.time_ns())  # the send time, for the latency
        pub.publish(msg)
        time.sleep(max(0.0, start + (i + 1) / args.rate - time.monotonic()))
    time.sleep(1.0)
    print(json.dumps({"matched": matched, "sent": args.frames}), flush=True)
    node.destroy_node()
    rclpy.shutdown()
    return 0


def last_json(text: str) -> dict:
    lines = [ln for ln in text.splitlines() if ln.startswith("{")]
    return json.loads(lines[-1]) if lines else {}


def measure(args: argparse.Namespace, setup: str, size: str) -> dict:
    """One set-up and size: a subscriber process, then a publisher process."""
    pub_side, sub_side, pub_reliable, sub_reliable = SETUPS[setup]
    me = [sys.executable, str(Path(__file__).resolve()), "--frames", str(args.frames),
          "--rate", str(args.rate), "--size", size]  # fmt: skip
    sub_cmd = [*me, "--role", "sub", *["--reliable"] * sub_reliable]
    pub_cmd = [*me, "--role", "pub", *["--reliable"] * pub_reliable]
    sub = subprocess.Popen(sub_cmd, env=side_env(sub_side, args.domain_id),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    assert sub.stdout is not None
    sub.stdout.readline()  # "ready"
    pub = subprocess.run(pub_cmd, env=side_env(pub_side, args.domain_id),
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    time.sleep(1.0)
    sub.send_signal(signal.SIGTERM)
    out, _ = sub.communicate(timeout=30)
    sent, got = last_json(pub.stdout), last_json(out)
    row = {
        "setup": setup,
        "publisher": pub_side + (" reliable" if pub_reliable else ""),
        "subscriber": sub_side + (" reliable" if sub_reliable else ""),
        "size": size,
        "matched": sent.get("matched"),
        "sent": sent.get("sent", 0),
        "received": got.get("received", 0),
        "latency_ms_median": got.get("latency_ms_median"),
    }
    row["delivery"] = row["received"] / row["sent"] if row["sent"] else 0.0
    if not sent or not got:
        row["error"] = (pub.stdout + pub.stderr + out)[-2000:]
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--setups", default="".join(SETUPS))
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--domain-id", type=int, default=100)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--role", choices=["sub", "pub"], help=argparse.SUPPRESS)
    parser.add_argument("--size", choices=list(SIZES), help=argparse.SUPPRESS)
    parser.add_argument("--reliable", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role == "sub":
        return subscriber(args)
    if args.role == "pub":
        return publisher(args)
    if args.out is None:
        parser.error("--out is required")
    args.out.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()
    rows = []
    for setup in args.setups:
        for size in args.sizes:
            row = measure(args, setup, size)
            rows.append(row)
            print(f"{setup} pub {row['publisher']:<16} sub {row['subscriber']:<20} {size:>9}:"
                  f" {row['received']}/{row['sent']} ({row['delivery']:.0%})")  # fmt: skip
    result = {
        "frames": args.frames,
        "rate_hz": args.rate,
        "qos": "sensor data (best effort, keep last 5) unless a side says reliable (keep last 5)",
        "cpus": os.cpu_count(),
        "loadavg_start": load,
        "loadavg_end": os.getloadavg(),
        "rows": rows,
    }
    (args.out / "dds_large_frames.json").write_text(json.dumps(result, indent=1))
    table = ["| set-up | publisher | subscriber | size | received / sent | latency median ms |",
             "|---|---|---|---|---:|---:|"]  # fmt: skip
    for r in rows:
        lat = f"{r['latency_ms_median']:.1f}" if r["latency_ms_median"] is not None else "–"
        table.append(f"| {r['setup']} | {r['publisher']} | {r['subscriber']} | {r['size']} | "
                     f"{r['received']}/{r['sent']} ({r['delivery']:.0%}) | {lat} |")  # fmt: skip
    (args.out / "table.md").write_text("\n".join(table) + "\n")
    print("\n".join(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
