"""`sleeg bag eval`: check the arguments, replay the bag through the anomaly node (started here
or attached to) and write the report; exit code 2 when the run is incomplete."""

from __future__ import annotations

import argparse
import os
import re
import signal

from sleeg_core.common.errors import SleegError
from sleeg_core.data.bags import BagHandle, open_bag
from sleeg_core.data.labels import LabelMap, parse_label_map
from sleeg_ros.bag.options import CameraOptions, ReplayOptions
from sleeg_ros.bag.replay import Replay
from sleeg_ros.bag.report import write_report
from sleeg_ros.bag.results import CameraResult
from sleeg_ros.cameras import CAMERA_NAME

PARAM = re.compile(r"[A-Za-z_][\w.]*:=.*")


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


def _replay_options(
    args: argparse.Namespace, bag: BagHandle, topics: list[tuple[str, str]], label_map: LabelMap
) -> ReplayOptions:
    """The replay `args` ask for, each camera's labels from `--label-topic` or found in `bag`."""
    in_bag = {c.topic for c in bag.reader.connections}
    return ReplayOptions(
        bag=args.bag,
        cameras=[CameraOptions(n, t, _label_topic(args, t, in_bag)) for n, t in topics],
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


def _plan(camera: CameraResult) -> str:
    """`N frames of TOPIC (labels …)` for the start line."""
    opt = camera.options
    labels = f"labels from {opt.label_topic}" if opt.label_topic else "no labels"
    return f"{opt.tag}{camera.in_bag} frames of {opt.image_topic} ({labels})"


def _raise_interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def evaluate(args: argparse.Namespace) -> int:
    """`sleeg bag eval`: replay, report, and a SleegError naming the problems of an incomplete
    run."""
    _check_eval_args(args)
    topics = image_topics(args.image_topic)
    label_map = parse_label_map(args.label_map)
    bag = open_bag(args.bag)
    try:
        options = _replay_options(args, bag, topics, label_map)
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
