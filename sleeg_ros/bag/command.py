"""`sleeg bag make | info | eval`: image folders → rosbag2, bag summaries, and replay evaluation
of the anomaly node (latency, drops, AP / AUROC / FPR95 against label masks in the bag).

Bags are rosbag2 folders (`--out drive.mcap` → `drive/drive.mcap` + `drive/metadata.yaml`,
`drive.db3` likewise with SQLite), readable by `ros2 bag info/play` and by `rosbags`. Label masks
travel as mono8 Images on their own topic, `<image topic>/labels` unless named, with the frame's
header stamp; values follow the project convention 0 normal, 1 anomaly, 255 void.

`eval` replays one image topic into a single-camera node, or several (`--image-topic` repeated,
`[NAME=]TOPIC`) into one multi-camera node (parameter `cameras`) and reports per camera.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

from tqdm import tqdm

from sleeg_core.common.errors import SleegError
from sleeg_core.data.bags import bag_folder, bag_summary, open_bag, write_frames
from sleeg_core.data.datasets import LABEL_SUFFIXES, open_dataset
from sleeg_core.data.images import list_images, read_label, read_rgb
from sleeg_core.data.labels import LabelMap, parse_label_map
from sleeg_ros.bag.replay import CameraOptions, CameraResult, Replay, ReplayOptions
from sleeg_ros.bag.report import write_report
from sleeg_ros.cameras import CAMERA_NAME

PROJECT_LABELS = "0:0,1:1,255:255"
SIZE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")
PARAM = re.compile(r"[A-Za-z_][\w.]*:=.*")


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "bag",
        help="make rosbags from images, show them, replay them through the anomaly node",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="action", metavar="<action>", required=True)

    make = actions.add_parser(
        "make",
        help="image folder or labelled dataset → rosbag2 (.mcap or .db3)",
        description="Write frames (and label masks) as a rosbag2 at a fixed rate. Frames are read "
        "one at a time, in file-name order.",
    )
    source = make.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", type=Path, metavar="DIR", help="a folder of images")
    source.add_argument(
        "--dataset",
        type=Path,
        metavar="PATH",
        help="a labelled dataset folder (Road Anomaly or images/ + labels_masks/ layout): "
        "frames and labels",
    )
    make.add_argument(
        "--labels",
        type=Path,
        metavar="DIR",
        help="with --images: label masks named <image stem>[suffix].png, suffix one of "
        f"{', '.join(LABEL_SUFFIXES)}; values 0 normal, 1 anomaly, 255 void (see --label-map)",
    )
    make.add_argument(
        "--label-map",
        help="raw label value → 0/1/255, e.g. '0:0,2:1,*:255' (default: the dataset layout's, "
        f"or '{PROJECT_LABELS}' for --labels)",
    )
    make.add_argument("--topic", default="/camera/image_raw", help="image topic")
    make.add_argument("--label-topic", help="label topic (default: <topic>/labels)")
    make.add_argument(
        "--compressed",
        action="store_true",
        help="JPEG sensor_msgs/CompressedImage on <topic>/compressed (image_transport naming) "
        "instead of rgb8 Image on <topic>; labels stay lossless mono8",
    )
    make.add_argument("--rate", type=float, default=10.0, metavar="HZ", help="frames per second")
    make.add_argument("--frame-id", default="camera", help="header frame_id")
    make.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="BAG",
        help="x.mcap (MCAP) or x.db3 (SQLite): writes the bag folder x/",
    )

    info = actions.add_parser("info", help="topics, types, counts and time span of a bag")
    info.add_argument("bag", type=Path, help="bag folder, .mcap or .db3 file")

    ev = actions.add_parser(
        "eval",
        help="replay a bag through the anomaly node: latency, drops, AP/AUROC/FPR95",
        description="Start the anomaly node (or --attach to a running one), publish the bag's "
        "frames over DDS, record every node output into DIR/outputs/ (rosbag2, outputs.mcap) and "
        "write DIR/report.json, report.md, latency.png and contact_sheet.png. Latency is the time "
        "from publishing a frame to the arrival of its outputs (matched by header stamp) in this "
        "process. Several --image-topic (or a named one) go to one node serving them as cameras "
        "(parameter `cameras`), their frames in the bag's order; the report then has a section per "
        'camera (report.json: "cameras": {name: ...}). Exit code 2 when the run is incomplete '
        "(damaged bag, node died, a camera never answered); the partial report is kept.",
    )
    ev.add_argument("--bag", type=Path, required=True, help="bag folder, .mcap or .db3 file")
    ev.add_argument(
        "--image-topic",
        action="append",
        required=True,
        metavar="[NAME=]TOPIC",
        help="Image or CompressedImage topic; repeatable: each a camera of the node, NAME its "
        "name (a letter, then letters, digits or _; default cam0, cam1, … in order). A single "
        "topic without NAME: a node without cameras (input image, outputs unprefixed)",
    )
    labels = ev.add_mutually_exclusive_group()
    labels.add_argument(
        "--label-topic",
        help="mono8 label masks, with a single --image-topic (default, per camera: "
        "<image topic without /compressed>/labels when present)",
    )
    labels.add_argument("--no-labels", action="store_true", help="skip the anomaly metrics")
    ev.add_argument(
        "--label-map",
        default=PROJECT_LABELS,
        help=f"raw label → 0/1/255 (default {PROJECT_LABELS})",
    )
    ev.add_argument("--params", type=Path, metavar="FILE", help="node parameters file (YAML)")
    ev.add_argument(
        "-p",
        dest="overrides",
        action="append",
        default=[],
        metavar="NAME:=VALUE",
        help="node parameter override (repeatable)",
    )
    ev.add_argument(
        "--attach",
        action="store_true",
        help="use a running node (subscribed to the image topics: image_transport compressed "
        "for a CompressedImage topic; with named cameras, a node with those `cameras`) instead "
        "of starting one, which gets the bag's transports",
    )
    ev.add_argument(
        "--namespace",
        default="/",
        help="the node's namespace (outputs under it; a named camera's under <namespace>/<name>)",
    )
    pace = ev.add_mutually_exclusive_group()
    pace.add_argument(
        "--rate", type=float, default=1.0, metavar="X", help="recorded rate × X (default 1)"
    )
    pace.add_argument(
        "--max-rate",
        action="store_true",
        help="send the next frame as soon as every output of the previous one arrived",
    )
    ev.add_argument("--startup-timeout", type=float, default=120.0, metavar="S")
    ev.add_argument(
        "--frame-timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="--max-rate: give up waiting for a frame's outputs after S seconds",
    )
    ev.add_argument(
        "--sheet", type=int, default=6, metavar="N", help="frames per camera in the contact sheet"
    )
    ev.add_argument(
        "--no-record",
        action="store_true",
        help="do not write the outputs bag (nor the contact sheet): on few cores, writing every "
        "output competes with the node for the CPU and inflates its times",
    )
    ev.add_argument("--out", type=Path, required=True, metavar="DIR")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    return {"make": make, "info": info, "eval": evaluate}[args.action](args)


# ---------------------------------------------------------------- make


def _label_files(folder: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for path in list_images(folder, recursive=False):
        if path.stem in files:
            raise SleegError(f"two label files for one stem: {files[path.stem]} and {path}")
        files[path.stem] = path
    return files


def _folder_pairs(images: Path, labels: Path | None) -> list[tuple[Path, Path | None]]:
    frames = list_images(images, recursive=False)
    if not frames:
        raise SleegError(f"no images in {images}")
    if labels is None:
        return [(f, None) for f in frames]
    files = _label_files(labels)
    pairs = []
    for frame in frames:
        stems = [frame.stem + suffix for suffix in ("", *LABEL_SUFFIXES)]
        label = next((files[s] for s in stems if s in files), None)
        if label is None:
            raise SleegError(f"no label for {frame} in {labels} (looked for {', '.join(stems)})")
        pairs.append((frame, label))
    return pairs


def _folder_frames(
    pairs: list[tuple[Path, Path | None]], label_map: LabelMap, topic: str, label_topic: str
) -> Iterator[dict]:
    for image_path, label_path in pairs:
        frame = {topic: read_rgb(image_path)}
        if label_path is not None:
            label = label_map.apply(read_label(label_path), str(label_path))
            if label.shape != frame[topic].shape[:2]:
                raise SleegError(
                    f"label {label_path} is {label.shape[1]}×{label.shape[0]}, its image "
                    f"{image_path} {frame[topic].shape[1]}×{frame[topic].shape[0]}"
                )
            frame[label_topic] = label
        yield frame


def make(args: argparse.Namespace) -> int:
    if args.labels and not args.images:
        raise SleegError("--labels goes with --images (a --dataset has its own labels)")
    image_topic = f"{args.topic.rstrip('/')}/compressed" if args.compressed else args.topic
    label_topic = args.label_topic or f"{args.topic.rstrip('/')}/labels"
    if args.dataset:
        dataset = open_dataset(args.dataset, args.label_map)
        total, has_labels = len(dataset), True
        frames = ({image_topic: sample.image, label_topic: sample.label} for sample in dataset)
    else:
        pairs = _folder_pairs(args.images, args.labels)
        total, has_labels = len(pairs), args.labels is not None
        label_map = parse_label_map(args.label_map or PROJECT_LABELS)
        frames = _folder_frames(pairs, label_map, image_topic, label_topic)
    topics = {image_topic: args.compressed}
    if has_labels:
        topics[label_topic] = False
    bag_dir, _ = bag_folder(args.out)
    progress = tqdm(frames, total=total, desc=f"writing {bag_dir}", unit="frame")
    bag_dir, n = write_frames(args.out, topics, progress, args.rate, args.frame_id)
    print(f"wrote {bag_dir}: {n} frames at {args.rate:g} Hz on {', '.join(topics)}")
    return 0


# ---------------------------------------------------------------- info


def _clock(ns: int) -> str:
    local = time.strftime("%b %d %Y %H:%M:%S", time.localtime(ns // 10**9))
    return f"{local}.{ns % 10**9:09d} ({ns // 10**9}.{ns % 10**9:09d})"


def _size(n: int) -> str:
    k = min(int(math.log(max(n, 1), 1024)), len(SIZE_UNITS) - 1)
    return f"{n / 1024**k:.1f} {SIZE_UNITS[k]}"


def info(args: argparse.Namespace) -> int:
    s = bag_summary(args.bag)
    storage = {".mcap": "mcap", ".db3": "sqlite3"}
    ids = sorted({storage.get(Path(f).suffix, "?") for f in s["files"]})
    lines = [
        f"Files:             {', '.join(s['files'])}",
        f"Bag size:          {_size(s['size_bytes'])}",
        f"Storage id:        {', '.join(ids)}",
        f"Duration:          {s['duration_ns'] / 1e9:.9f}s",
    ]
    if s["messages"]:
        lines += [
            f"Start:             {_clock(s['start_ns'])}",
            f"End:               {_clock(s['end_ns'])}",
        ]
    lines.append(f"Messages:          {s['messages']}")
    label = "Topic information: "
    for topic, t in sorted(s["topics"].items()):
        lines.append(
            f"{label}Topic: {topic} | Type: {t['type']} | Count: {t['count']} | "
            f"Serialization Format: {t['format']}"
        )
        label = " " * len(label)
    if s["note"]:
        lines.append(f"Warning:           {s['note']}")
    print("\n".join(lines))
    return 0


# ---------------------------------------------------------------- eval


def image_topics(values: list[str]) -> list[tuple[str, str]]:
    """`--image-topic` values ([NAME=]TOPIC) → (camera name, topic): unnamed ones are cam<i> by
    position, except a single unnamed topic, whose name stays "" (a node without `cameras`)."""
    cameras = []
    for i, value in enumerate(values):
        name, named, topic = value.partition("=")
        if not named:
            name, topic = "" if len(values) == 1 else f"cam{i}", value
        elif not CAMERA_NAME.fullmatch(name):
            raise SleegError(
                f"--image-topic {value!r}: {name!r} is not a camera name (a letter, then "
                "letters, digits or _)"
            )
        if not topic:
            raise SleegError(f"--image-topic {value!r}: no topic")
        cameras.append((name, topic))
    for what, items in (
        ("camera name", [n for n, _ in cameras]),
        ("topic", [t for _, t in cameras]),
    ):
        repeated = sorted({x for x in items if items.count(x) > 1})
        if repeated:
            raise SleegError(f"--image-topic: {what} {', '.join(map(repr, repeated))} given twice")
    return cameras


def _label_topic(args: argparse.Namespace, image_topic: str, topics: set[str]) -> str | None:
    if args.no_labels:
        return None
    if args.label_topic:
        return args.label_topic
    base = image_topic.removesuffix("/compressed").rstrip("/")
    guess = f"{base}/labels"
    return guess if guess in topics else None


def _check_eval_args(args: argparse.Namespace) -> None:
    if args.attach and (args.params or args.overrides):
        raise SleegError("--params and -p set up a node started here: they do not go with --attach")
    if args.label_topic and len(args.image_topic) > 1:
        raise SleegError(
            "--label-topic goes with a single --image-topic (with several, each camera's labels "
            "are <image topic>/labels when present)"
        )
    bad = [p for p in args.overrides if not PARAM.fullmatch(p)]
    if bad:
        raise SleegError(f"-p takes NAME:=VALUE, got {', '.join(map(repr, bad))}")
    if args.params and not args.params.is_file():
        raise SleegError(f"parameters file not found: {args.params}")
    if not args.max_rate and not args.rate > 0:
        raise SleegError(f"--rate must be positive, got {args.rate}")
    if (args.out / "outputs").exists():
        raise SleegError(f"{args.out} holds an earlier run (outputs/ exists): choose a new --out")


def _plan(camera: CameraResult) -> str:
    """`N frames of TOPIC (labels …)` for the start line."""
    opt = camera.options
    labels = f"labels from {opt.label_topic}" if opt.label_topic else "no labels"
    return f"{opt.tag}{camera.in_bag} frames of {opt.image_topic} ({labels})"


def _raise_interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def evaluate(args: argparse.Namespace) -> int:
    _check_eval_args(args)
    topics = image_topics(args.image_topic)
    label_map = parse_label_map(args.label_map)
    bag = open_bag(args.bag)
    try:
        in_bag = {c.topic for c in bag.reader.connections}
        cameras = [CameraOptions(n, t, _label_topic(args, t, in_bag)) for n, t in topics]
        options = ReplayOptions(
            bag=args.bag,
            cameras=cameras,
            out=args.out,
            rate=None if args.max_rate else args.rate,
            label_map=label_map,
            attach=args.attach,
            namespace=args.namespace,
            params_file=args.params,
            overrides=args.overrides,
            startup_timeout=args.startup_timeout,
            frame_timeout=args.frame_timeout,
            record=not args.no_record,
        )
        replay = Replay(options, bag)
        args.out.mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
        if bag.note:
            print(f"warning: {bag.note}")
        pace = "max rate" if options.rate is None else f"recorded rate x{options.rate:g}"
        plan = "; ".join(_plan(c) for c in replay.result.cameras.values())
        print(f"replaying {plan}, {pace}", flush=True)
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
        try:
            result = replay.run()
        finally:
            signal.signal(signal.SIGTERM, previous)
        report = write_report(result, bag, args.sheet)
    finally:
        bag.reader.close()
    print((args.out / "report.md").read_text())
    if report["problems"]:
        raise SleegError(
            f"incomplete run: {'; '.join(report['problems'])} (partial report: "
            f"{args.out / 'report.md'})"
        )
    return 0
