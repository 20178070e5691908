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
from pathlib import Path

from sleeg_core.data.datasets import LABEL_SUFFIXES
from sleeg_ros.bag.evaluate import evaluate
from sleeg_ros.bag.info import info
from sleeg_ros.bag.make import PROJECT_LABELS, make


def add_parser(sub: argparse._SubParsersAction) -> None:
    """`sleeg bag` and its actions make, info and eval."""
    parser = sub.add_parser(
        "bag",
        help="make rosbags from images, show them, replay them through the anomaly node",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="action", metavar="<action>", required=True)
    _add_make(actions)
    _add_info(actions)
    _add_eval(actions)
    parser.set_defaults(run=run)


ACTIONS = {"make": make, "info": info, "eval": evaluate}


def run(args: argparse.Namespace) -> int:
    """Run the action `args` name; its exit code."""
    return ACTIONS[args.action](args)


def _add_make(actions: argparse._SubParsersAction) -> None:
    parser = actions.add_parser(
        "make",
        help="image folder or labelled dataset → rosbag2 (.mcap or .db3)",
        description="Write frames (and label masks) as a rosbag2 at a fixed rate. Frames are read "
        "one at a time, in file-name order.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", type=Path, metavar="DIR", help="a folder of images")
    source.add_argument(
        "--dataset",
        type=Path,
        metavar="PATH",
        help="a labelled dataset folder (Road Anomaly or images/ + labels_masks/ layout): "
        "frames and labels",
    )
    parser.add_argument(
        "--labels",
        type=Path,
        metavar="DIR",
        help="with --images: label masks named <image stem>[suffix].png, suffix one of "
        f"{', '.join(LABEL_SUFFIXES)}; values 0 normal, 1 anomaly, 255 void (see --label-map)",
    )
    parser.add_argument(
        "--label-map",
        help="raw label value → 0/1/255, e.g. '0:0,2:1,*:255' (default: the dataset layout's, "
        f"or '{PROJECT_LABELS}' for --labels)",
    )
    parser.add_argument("--topic", default="/camera/image_raw", help="image topic")
    parser.add_argument("--label-topic", help="label topic (default: <topic>/labels)")
    parser.add_argument(
        "--compressed",
        action="store_true",
        help="JPEG sensor_msgs/CompressedImage on <topic>/compressed (image_transport naming) "
        "instead of rgb8 Image on <topic>; labels stay lossless mono8",
    )
    parser.add_argument("--rate", type=float, default=10.0, metavar="HZ", help="frames per second")
    parser.add_argument("--frame-id", default="camera", help="header frame_id")
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="BAG",
        help="x.mcap (MCAP) or x.db3 (SQLite): writes the bag folder x/",
    )


def _add_info(actions: argparse._SubParsersAction) -> None:
    parser = actions.add_parser("info", help="topics, types, counts and time span of a bag")
    parser.add_argument("bag", type=Path, help="bag folder, .mcap or .db3 file")


def _add_eval(actions: argparse._SubParsersAction) -> None:
    parser = actions.add_parser(
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
    parser.add_argument("--bag", type=Path, required=True, help="bag folder, .mcap or .db3 file")
    parser.add_argument(
        "--image-topic",
        action="append",
        required=True,
        metavar="[NAME=]TOPIC",
        help="Image or CompressedImage topic; repeatable: each a camera of the node, NAME its "
        "name (a letter, then letters, digits or _; default cam0, cam1, … in order). A single "
        "topic without NAME: a node without cameras (input image, outputs unprefixed)",
    )
    labels = parser.add_mutually_exclusive_group()
    labels.add_argument(
        "--label-topic",
        help="mono8 label masks, with a single --image-topic (default, per camera: "
        "<image topic without /compressed>/labels when present)",
    )
    labels.add_argument("--no-labels", action="store_true", help="skip the anomaly metrics")
    parser.add_argument(
        "--label-map",
        default=PROJECT_LABELS,
        help=f"raw label → 0/1/255 (default {PROJECT_LABELS})",
    )
    parser.add_argument("--params", type=Path, metavar="FILE", help="node parameters file (YAML)")
    parser.add_argument(
        "-p",
        dest="overrides",
        action="append",
        default=[],
        metavar="NAME:=VALUE",
        help="node parameter override (repeatable)",
    )
    parser.add_argument(
        "--attach",
        action="store_true",
        help="use a running node (subscribed to the image topics: image_transport compressed "
        "for a CompressedImage topic; with named cameras, a node with those `cameras`) instead "
        "of starting one, which gets the bag's transports",
    )
    parser.add_argument(
        "--namespace",
        default="/",
        help="the node's namespace (outputs under it; a named camera's under <namespace>/<name>)",
    )
    pace = parser.add_mutually_exclusive_group()
    pace.add_argument(
        "--rate", type=float, default=1.0, metavar="X", help="recorded rate × X (default 1)"
    )
    pace.add_argument(
        "--max-rate",
        action="store_true",
        help="send the next frame as soon as every output of the previous one arrived",
    )
    parser.add_argument("--startup-timeout", type=float, default=120.0, metavar="S")
    parser.add_argument(
        "--frame-timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="--max-rate: give up waiting for a frame's outputs after S seconds",
    )
    parser.add_argument(
        "--sheet", type=int, default=6, metavar="N", help="frames per camera in the contact sheet"
    )
    parser.add_argument(
        "--no-record",
        action="store_true",
        help="do not write the outputs bag (nor the contact sheet): on few cores, writing every "
        "output competes with the node for the CPU and inflates its times",
    )
    parser.add_argument("--out", type=Path, required=True, metavar="DIR")
