"""`sleeg bag eval`'s replay: a bag's frames into the anomaly node over DDS, its outputs recorded.

One rclpy participant (its own context) publishes the frames of one or more image topics as the
bag holds them (serialized bytes, header stamps kept), each to its camera of the node, and
subscribes to every node output as serialized bytes. The executor thread notes each output's
arrival time by its camera and header stamp (two cameras may share a stamp); a recorder thread
writes the outputs to a rosbag2 and scores each camera's anomaly/score images against its labels
in the bag with `StreamingMetrics` (the code behind `sleeg eval`).

Latency is measured on one clock in this process: `time.monotonic()` right before a frame is
published and when each of its outputs arrives, matched by header stamp. The frames of all image
topics go out in the bag's log-time order at its recorded rate (scaled), or with `rate=None` one
at a time: the next frame when every output of the previous one has arrived. Per camera a warm-up
frame (its first frame, stamped 1 ns, not recorded) goes first: it waits out the node's first
inference and shows which outputs the node publishes; the node's status counters (its
/diagnostics status for the camera's image topic) are reported as differences from a status taken
after the warm-up.

A single image topic without a camera name goes to a node without `cameras` (input `image`,
outputs unprefixed); named cameras (or several topics) to a node with parameter `cameras`, camera
c reading `c/image` and publishing under `c/`.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
import rclpy
from rclpy.context import Context
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.publisher import Publisher
from rclpy.qos import QoSProfile, QoSReliabilityPolicy
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore
from sensor_msgs.msg import CompressedImage, Image

from sleeg_core.common.errors import SleegError
from sleeg_core.data.bags import (
    TYPESTORE,
    BagHandle,
    decode_image,
    header_stamp,
    topic_connections,
    with_stamp,
)
from sleeg_core.data.image_msgs import BadFrameError, image_to_array
from sleeg_core.data.labels import LabelMap
from sleeg_core.eval.metrics import StreamingMetrics
from sleeg_ros.outputs import STATUS_TOPIC, topic_types, type_name

IMAGE = "sensor_msgs/msg/Image"
STATUS = STATUS_TOPIC  # the others' statuses are ignored
SCORE = "anomaly/score"
OUTPUTS: dict[str, tuple[str, type]] = {  # node output (topic) → rosbags type, rclpy type
    topic: (type_name(kind), kind) for topic, kind in topic_types().items()
}
FRAME_OUTPUTS = tuple(t for t in OUTPUTS if t != STATUS)
NODE_CODE = "import sys; from sleeg_ros.anomaly_node import main; sys.exit(main(sys.argv[1:]))"
RELIABLE = QoSProfile(depth=10, reliability=QoSReliabilityPolicy.RELIABLE)
POLL_S = 0.05
SETTLE_S = 0.5  # after the warm-up's first output: how long to wait for more output topics
STATUS_WAIT_S = 15.0  # at most this long for a status after the warm-up / after the replay
CLOCK_MARGIN_NS = 20_000_000  # a status this much after an output includes that output
MAX_PENDING = 16  # scores waiting for their label (and labels for their score), at most


@dataclass
class CameraOptions:
    """One image topic of the bag and the node camera it goes to."""

    name: str  # the node's camera (parameter `cameras`); "": the single camera of a node without
    image_topic: str
    label_topic: str | None = None

    def node_name(self, relative: str) -> str:
        """A name of the node relative to this camera (`c/image`; the single camera: `image`)."""
        return f"{self.name}/{relative}" if self.name else relative

    def param(self, name: str) -> str:
        """The node parameter for this camera's `name` (`c.name`; the single camera: `name`)."""
        return f"{self.name}.{name}" if self.name else name

    @property
    def tag(self) -> str:
        """Prefix of this camera's problems ("" for the single camera)."""
        return f"camera {self.name}: " if self.name else ""


@dataclass
class ReplayOptions:
    bag: Path
    cameras: list[CameraOptions]  # distinct names and image topics
    out: Path
    rate: float | None  # recorded-rate factor; None: as fast as the node answers
    label_map: LabelMap
    attach: bool = False
    namespace: str = "/"
    params_file: Path | None = None
    overrides: list[str] = field(default_factory=list)
    startup_timeout: float = 120.0
    frame_timeout: float = 30.0
    status_period: float = 1.0  # for a node started here (a -p override wins)
    record: bool = True  # write the outputs into <out>/outputs (False: count and score only)

    @property
    def named(self) -> bool:
        """The node serves the cameras by name (parameter `cameras`, outputs under `<name>/`)."""
        return any(c.name for c in self.cameras)


@dataclass
class SentFrame:
    index: int  # position among its image topic's messages
    bag_stamp: int  # header stamp in the bag (ns)
    stamp: int  # header stamp sent (the bag's, unless it repeats an earlier one of its camera)
    sent: float  # time.monotonic() right before publishing
    arrivals: dict[str, float] = field(default_factory=dict)  # output → time.monotonic()

    def answered(self, expected: tuple[str, ...]) -> bool:
        """Every one of the `expected` outputs arrived."""
        return all(t in self.arrivals for t in expected)


@dataclass
class NodeStatus:
    stamp: int  # header stamp (node clock, ns)
    values: dict[str, str]


class Scorer:
    """One camera's AP / AUROC / FPR95: its anomaly/score images against its labels, which meet
    by sent header stamp, whichever comes first. Fed from the recorder thread."""

    def __init__(self, label_map: LabelMap | None, frames: dict[int, int]) -> None:
        self.label_map = label_map  # None: no labels, nothing to score
        self.frame_index = frames  # sent stamp → frame index (filled by the main thread)
        self.label_problems: Counter[str] = Counter()
        self.metrics = StreamingMetrics()
        self.scored: list[int] = []  # frame indices whose score met a label
        self.unlabelled_scores = 0
        self._labels: dict[int, np.ndarray] = {}
        self._scores: dict[int, np.ndarray] = {}

    def add_score(self, raw: bytes) -> None:
        stamp = header_stamp(raw)
        if stamp not in self.frame_index or self.label_map is None:
            return
        try:
            score = image_to_array(TYPESTORE.deserialize_cdr(raw, IMAGE)).copy()  # writable
        except BadFrameError as err:
            self.label_problems[f"anomaly/score not readable: {err}"] += 1
            return
        if stamp in self._labels:
            self._score(stamp, score, self._labels.pop(stamp))
        else:
            self._scores[stamp] = score
        self._forget(self._labels, before=self.frame_index[stamp])  # frames the node dropped

    def add_label(self, stamp: int, label: np.ndarray) -> None:
        if stamp in self._scores:
            self._score(stamp, self._scores.pop(stamp), label)
        else:
            self._labels[stamp] = label
        self.unlabelled_scores += self._forget(self._scores, before=self.frame_index[stamp])

    def _forget(self, pending: dict[int, np.ndarray], before: int) -> int:
        """Drop pending items of frames before `before` (their partner will not come), and the
        oldest beyond MAX_PENDING; returns how many were dropped."""
        order = sorted(pending, key=self.frame_index.__getitem__)
        old = [s for s in order if self.frame_index[s] < before]
        old += [s for s in order[len(old) : len(order) - MAX_PENDING]]
        for s in old:
            del pending[s]
        return len(old)

    def _score(self, stamp: int, score: np.ndarray, raw_label: np.ndarray) -> None:
        if score.shape != raw_label.shape:
            self.label_problems[
                f"label {raw_label.shape[1]}×{raw_label.shape[0]} ≠ score "
                f"{score.shape[1]}×{score.shape[0]}"
            ] += 1
            return
        try:
            label = self.label_map.apply(raw_label, "label")
        except SleegError as err:
            self.label_problems[str(err)] += 1
            return
        self.metrics.update(score, label)
        self.scored.append(self.frame_index[stamp])

    def unlabelled(self) -> int:
        """Scores that met no label (once the recorder is closed)."""
        return self.unlabelled_scores + len(self._scores)


@dataclass
class CameraResult:
    """What happened to one camera's frames."""

    options: CameraOptions
    in_bag: int  # image messages the bag index lists
    compressed: bool  # CompressedImage frames (else Image)
    topics: dict[str, str]  # frame output → its full topic
    scorer: Scorer
    read: int = 0  # image messages read
    frames: list[SentFrame] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)  # reason → frames not sent
    expected: tuple[str, ...] = ()  # outputs the node published for the warm-up frame
    warmup_frames: int = 0
    baseline: NodeStatus | None = None
    final: NodeStatus | None = None
    unmatched_outputs: int = 0  # outputs with a stamp that was never sent (another publisher?)
    timed_out: int = 0  # --max-rate: frames whose outputs did not all come within frame_timeout
    labels: int = 0  # label messages read


@dataclass
class ReplayResult:
    options: ReplayOptions
    cameras: dict[str, CameraResult]  # by camera name, in the order of the options
    problems: list[str] = field(default_factory=list)  # why the run is incomplete
    bag_note: str = ""
    node_pid: int | None = None
    node_exit: int | None = None
    recorder: Recorder | None = None


class ReplayError(Exception):
    """The replay cannot go on: the node exited, left, never came up or never answered."""


class Recorder:
    """Writes node outputs into a rosbag2 under their full topics and hands anomaly/score images
    and labels to their camera's Scorer, in its own thread."""

    def __init__(self, folder: Path, topics: dict[str, str], record: bool = True) -> None:
        self.items: queue.Queue[tuple[Callable, tuple] | None] = queue.Queue()
        self.counts: Counter[str] = Counter()  # full topic → messages
        self.error = ""
        self.writer: Writer | None = None  # None: outputs are counted and scored, not written
        self.conns = {}
        if record:
            store = output_typestore()
            self.writer = Writer(folder, version=9, storage_plugin=StoragePlugin.MCAP)
            self.writer.open()
            self.conns = {
                topic: self.writer.add_connection(topic, msgtype, typestore=store)
                for topic, msgtype in topics.items()
            }
        self.thread = threading.Thread(target=self._run, name="sleeg-bag-recorder", daemon=True)
        self.thread.start()

    def output(self, topic: str, log_ns: int, raw: bytes, scorer: Scorer | None = None) -> None:
        """Record one output; an anomaly/score image also goes to its camera's `scorer`."""
        self.items.put((self._record, (topic, log_ns, raw, scorer)))

    def label(self, scorer: Scorer, stamp: int, label: np.ndarray) -> None:
        self.items.put((scorer.add_label, (stamp, label)))

    def close(self) -> None:
        """Finish the queue and close the bag (its index and metadata.yaml are written here)."""
        self.items.put(None)
        self.thread.join()
        if self.writer is not None:
            self.writer.close()

    def _run(self) -> None:
        while (item := self.items.get()) is not None:
            work, args = item
            try:
                work(*args)
            except Exception as err:  # keep recording; the report names the first failure
                self.error = self.error or f"{err.__class__.__name__}: {err}"

    def _record(self, topic: str, log_ns: int, raw: bytes, scorer: Scorer | None) -> None:
        if self.writer is not None:
            self.writer.write(self.conns[topic], log_ns, raw)
        self.counts[topic] += 1
        if scorer is not None:
            scorer.add_score(raw)


class Camera:
    """One camera's part of a replay: its bag connections, publisher, frames sent (by sent
    stamp), warm-up and statuses; `result` is what the report gets."""

    def __init__(
        self, options: CameraOptions, bag: BagHandle, namespace: str, label_map: LabelMap
    ) -> None:
        reader = bag.reader
        self.opt = options
        self.image_conns = topic_connections(reader, options.image_topic, bag.path)
        self.label_conns = (
            topic_connections(reader, options.label_topic, bag.path) if options.label_topic else []
        )
        in_bag = sum(c.msgcount for c in self.image_conns)
        if not in_bag:
            raise SleegError(f"topic '{options.image_topic}' in {bag.path} has no messages")
        prefix = namespace.rstrip("/") + (f"/{options.name}" if options.name else "")
        self.frame_index: dict[int, int] = {}  # sent stamp → frame index
        self.result = CameraResult(
            options,
            in_bag,
            compressed=self.image_conns[0].msgtype.endswith("CompressedImage"),
            topics={short: f"{prefix}/{short}" for short in FRAME_OUTPUTS},
            scorer=Scorer(label_map if options.label_topic else None, self.frame_index),
        )
        self.by_stamp: dict[int, SentFrame] = {}
        self.by_bag_stamp: dict[int, SentFrame] = {}
        self.labels_waiting: dict[int, np.ndarray] = {}  # bag stamp → label read before its frame
        self.warmup: dict[int, dict[str, float]] = {}  # warm-up stamp → output → arrival
        self.statuses: list[NodeStatus] = []
        self.status_suffix = ""  # the node names its status "<node name>: <input topic>"
        self.pub: Publisher | None = None

    @property
    def subscribed(self) -> bool:
        """The node subscribes to this camera's image topic."""
        return self.pub.get_subscription_count() > 0

    @property
    def transport(self) -> str:
        return "compressed" if self.result.compressed else "raw"

    def node_input(self) -> str:
        """The node's input name for this camera's transport (`[c/]image[/compressed]`)."""
        image = self.opt.node_name("image")
        return f"{image}/compressed" if self.result.compressed else image


class Replay:
    """One `sleeg bag eval` run: node, participant, recorder; `run()` returns what happened."""

    def __init__(self, options: ReplayOptions, bag: BagHandle) -> None:
        self.opt = options
        self.bag = bag
        self.cameras = [
            Camera(c, bag, options.namespace, options.label_map) for c in options.cameras
        ]
        self.images = {c.opt.image_topic: c for c in self.cameras}  # image topic → camera
        self.labels: dict[str, list[Camera]] = {}  # label topic → cameras it labels
        for c in self.cameras:
            if c.opt.label_topic:
                self.labels.setdefault(c.opt.label_topic, []).append(c)
        cameras = {c.opt.name: c.result for c in self.cameras}
        self.result = ReplayResult(options, cameras, bag_note=bag.note)
        if bag.note:
            self.result.problems.append(f"damaged bag: {bag.note}")
        self.proc: subprocess.Popen | None = None
        self.cond = threading.Condition()
        self.last_output_wall = 0  # time.time_ns() of the latest frame output
        self.matched = False
        self.start: tuple[float, int] | None = None  # (monotonic, log ns) of the first frame

    # ------------------------------------------------------------------ set-up and tear-down
    def run(self) -> ReplayResult:
        """Start (or find) the node, warm it up, replay, drain; never raises on a node death."""
        res = self.result
        topics = {t: OUTPUTS[s][0] for c in self.cameras for s, t in c.result.topics.items()}
        topics[STATUS] = OUTPUTS[STATUS][0]
        res.recorder = Recorder(self.opt.out / "outputs", topics, self.opt.record)
        self.context = Context()
        # not sys.argv: rcl would take its `-p name:=value` words for remapping rules
        rclpy.init(args=["sleeg_bag_eval"], context=self.context)
        self._make_participant()
        try:
            if not self.opt.attach:
                self._start_node()
            self._wait_ready()
            for camera in self.cameras:
                self._warm_up(camera)
            for camera, status in zip(self.cameras, self._statuses("after warm-up"), strict=True):
                camera.result.baseline = status
            self._replay()
            self._drain()
            res.problems += self._unanswered()
            for camera, status in zip(self.cameras, self._statuses("after replay"), strict=True):
                camera.result.final = status
        except ReplayError as err:
            res.problems.append(str(err))
        except KeyboardInterrupt:
            res.problems.append("interrupted")
        finally:
            self._stop_node()
            self._close_participant()
            res.recorder.close()
            if res.recorder.error:
                res.problems.append(f"recording the outputs failed: {res.recorder.error}")
        return res

    def _make_participant(self) -> None:
        self.node = rclpy.create_node("sleeg_bag_eval", context=self.context)
        status = OUTPUTS[STATUS][1]
        self.subs = [
            self.node.create_subscription(status, STATUS, self._on_status, RELIABLE, raw=True)
        ]
        for camera in self.cameras:
            topic = camera.opt.image_topic
            camera.status_suffix = f": {self.node.resolve_topic_name(topic)}"
            kind = CompressedImage if camera.result.compressed else Image
            camera.pub = self.node.create_publisher(kind, topic, RELIABLE)
            self.subs += [
                self.node.create_subscription(
                    OUTPUTS[short][1],
                    full,
                    lambda raw, c=camera, s=short: self._on_output(c, s, raw),
                    RELIABLE,
                    raw=True,
                )
                for short, full in camera.result.topics.items()
            ]
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.spinner = threading.Thread(target=self._spin, name="sleeg-bag-dds", daemon=True)
        self.spinner.start()

    def _spin(self) -> None:
        with contextlib.suppress(ExternalShutdownException):
            self.executor.spin()

    def _close_participant(self) -> None:
        self.executor.shutdown()
        self.spinner.join(timeout=5.0)
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)

    def node_command(self) -> list[str]:
        """The anomaly node with the params file, -p overrides and remaps of this run (named
        cameras: parameter `cameras`); each camera's image_transport follows its topic's message
        type."""
        args = ["--ros-args"]
        if self.opt.params_file:
            args += ["--params-file", str(self.opt.params_file)]
        params = [f"status_period_s:={self.opt.status_period}", *self.opt.overrides]
        if self.opt.named:
            params.append(f"cameras:=[{', '.join(c.opt.name for c in self.cameras)}]")
        params += [f"{c.opt.param('image_transport')}:={c.transport}" for c in self.cameras]
        for p in params:
            args += ["-p", p]
        for camera in self.cameras:
            args += ["-r", f"{camera.node_input()}:={camera.opt.image_topic}"]
        if self.opt.namespace.strip("/"):
            args += ["-r", f"__ns:={self.opt.namespace}"]
        return [sys.executable, "-c", NODE_CODE, *args]

    def _start_node(self) -> None:
        env = dict(os.environ)
        env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
        env["PYTHONUNBUFFERED"] = "1"
        with (self.opt.out / "node.log").open("w") as log:
            self.proc = subprocess.Popen(  # its own session: a Ctrl-C here reaches us only
                self.node_command(), env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        self.result.node_pid = self.proc.pid
        log = self.opt.out / "node.log"
        print(f"started anomaly_node (pid {self.proc.pid}), log: {log}", flush=True)

    def _stop_node(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.result.node_exit = self.proc.returncode

    def node_gone(self) -> str | None:
        """Why the node is no longer there, or None."""
        if self.proc is not None:
            code = self.proc.poll()
            if code is None:
                return None
            if code < 0:
                return f"the node process was killed by signal {-code}"
            lines = (self.opt.out / "node.log").read_text(errors="replace").strip().splitlines()
            return f"the node process exited with code {code}" + (
                f": {lines[-1][:300]}" if code and lines else ""
            )
        if self.matched and (left := [c.opt.image_topic for c in self.cameras if not c.subscribed]):
            return f"the attached node left: nobody subscribes to {', '.join(left)} any more"
        return None

    # ------------------------------------------------------------------ DDS callbacks
    def _on_status(self, raw: bytes) -> None:
        """A /diagnostics message: each camera's status of our node is noted; other nodes'
        diagnostics are not recorded."""
        wall, stamp = time.time_ns(), header_stamp(raw)
        msg = TYPESTORE.deserialize_cdr(raw, OUTPUTS[STATUS][0])
        ours = False
        with self.cond:
            for camera in self.cameras:
                status = next(
                    (s for s in msg.status if s.name.endswith(camera.status_suffix)), None
                )
                if status is not None:
                    camera.statuses.append(
                        NodeStatus(stamp, {kv.key: kv.value for kv in status.values})
                    )
                    ours = True
            self.cond.notify_all()
        if ours:
            self.result.recorder.output(STATUS, wall, raw)

    def _on_output(self, camera: Camera, short: str, raw: bytes) -> None:
        now, wall = time.monotonic(), time.time_ns()
        stamp = header_stamp(raw)
        with self.cond:
            frame = camera.by_stamp.get(stamp)
            if frame is not None:
                frame.arrivals.setdefault(short, now)
            elif stamp in camera.warmup:
                camera.warmup[stamp].setdefault(short, now)
            else:
                camera.result.unmatched_outputs += 1
            self.last_output_wall = wall
            self.cond.notify_all()
        if stamp in camera.warmup:
            return  # the warm-up frames are not part of the recording
        scorer = camera.result.scorer if short == SCORE else None
        self.result.recorder.output(camera.result.topics[short], wall, raw, scorer)

    # ------------------------------------------------------------------ waiting
    def _wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until `predicate()` (checked under the lock) or `timeout`; ReplayError when the
        node disappears meanwhile."""
        end = time.monotonic() + timeout
        with self.cond:
            while not predicate():
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(min(left, POLL_S))
                if (why := self.node_gone()) is not None:
                    raise ReplayError(why)
        return True

    def _wait_ready(self) -> None:
        """Until the node subscribes to every image topic and publishes every output."""

        def ready() -> bool:
            return all(c.subscribed for c in self.cameras) and all(
                s.get_publisher_count() > 0 for s in self.subs
            )

        if (why := self.node_gone()) is not None:
            raise ReplayError(why)
        if not self._wait(ready, self.opt.startup_timeout):
            where = f"node in namespace '{self.opt.namespace}'" if self.opt.attach else "node"
            inputs = ", ".join(
                f"{c.opt.image_topic} (image_transport {c.transport})" for c in self.cameras
            )
            outputs = [t for c in self.cameras for t in c.result.topics.values()] + [STATUS]
            raise ReplayError(
                f"no {where} subscribed to {inputs} and published {', '.join(outputs)} within "
                f"{self.opt.startup_timeout:.0f} s"
            )
        self.matched = True

    def _warm_up(self, camera: Camera) -> None:
        """Send the camera's first decodable frame (stamps 1, 2, … ns) until the node answers;
        learn the outputs it publishes per frame."""
        raw = self._first_decodable(camera)
        if raw is None:
            raise ReplayError(f"no decodable frame on {camera.opt.image_topic}")
        warmup = camera.warmup
        end = time.monotonic() + self.opt.startup_timeout
        answered = lambda: any(warmup.values())  # noqa: E731
        while not answered():
            if time.monotonic() > end:
                raise ReplayError(
                    f"{camera.opt.tag}the node did not answer a frame within "
                    f"{self.opt.startup_timeout:.0f} s"
                )
            stamp = len(warmup) + 1
            with self.cond:
                warmup[stamp] = {}
            camera.pub.publish(with_stamp(raw, stamp))
            self._wait(answered, 2.0)
        first = next(s for s, got in warmup.items() if got)
        seen = lambda: len(warmup[first])  # noqa: E731
        while True:  # until no further output topic shows up for SETTLE_S
            n = seen()
            if n == len(FRAME_OUTPUTS) or not self._wait(lambda n=n: seen() > n, SETTLE_S):
                break
        camera.result.expected = tuple(t for t in FRAME_OUTPUTS if t in warmup[first])
        last = max(warmup)  # a warm-up frame still in the node: let it finish
        self._wait(lambda: len(warmup[last]) >= seen(), self.opt.frame_timeout)
        camera.result.warmup_frames = len(warmup)

    def _status_after(self, camera: Camera, wall_ns: int) -> NodeStatus | None:
        """The camera's first node status stamped after `wall_ns` (it counts everything before)."""
        after = lambda: [s for s in camera.statuses if s.stamp > wall_ns + CLOCK_MARGIN_NS]  # noqa: E731
        return after()[0] if self._wait(lambda: bool(after()), STATUS_WAIT_S) else None

    def _statuses(self, when: str) -> list[NodeStatus | None]:
        """Each camera's status after the latest output; a problem for each that did not come."""
        wall_ns = self.last_output_wall
        out = [self._status_after(c, wall_ns) for c in self.cameras]
        self.result.problems += [
            f"{c.opt.tag}no node status within {STATUS_WAIT_S:.0f} s {when}"
            for c, status in zip(self.cameras, out, strict=True)
            if status is None
        ]
        return out

    def _unanswered(self) -> list[str]:
        """A problem for each camera none of whose frames got an output."""
        return [
            f"none of the {len(c.result.frames)} frames sent on {c.opt.image_topic} got an output"
            for c in self.cameras
            if c.result.frames and not any(f.arrivals for f in c.result.frames)
        ]

    # ------------------------------------------------------------------ replay
    def _messages(self) -> Iterator[tuple[object, int, bytes]]:
        """(connection, log time, raw) of every camera's image and label topics in log-time
        order; a read error ends the iteration and is recorded as a problem."""
        conns = {c.id: c for cam in self.cameras for c in cam.image_conns + cam.label_conns}
        n = 0
        try:
            for conn, log_ns, raw in self.bag.reader.messages(connections=list(conns.values())):
                n += 1
                yield conn, log_ns, raw
        except Exception as err:
            read = sum(c.result.read for c in self.cameras)
            in_bag = sum(c.result.in_bag for c in self.cameras)
            self.result.problems.append(
                f"reading the bag failed after {n} message(s) ({read} of {in_bag} frames): "
                f"{err.__class__.__name__}: {err}"
            )

    def _first_decodable(self, camera: Camera) -> bytes | None:
        """The camera's first frame that decodes (None: none; a read error is reported by the
        replay itself)."""
        reader = self.bag.reader
        with contextlib.suppress(Exception):
            for conn, _t, raw in reader.messages(connections=camera.image_conns):
                with contextlib.suppress(Exception):  # skipped (and counted) in the replay
                    decode_image(reader.deserialize(raw, conn.msgtype), conn.msgtype)
                    return bytes(raw)
        return None

    def _replay(self) -> None:
        """Every frame and label of the cameras in the bag's log-time order, paced."""
        in_bag = sum(c.result.in_bag for c in self.cameras)
        progress = max(1, in_bag // 10)
        for conn, log_ns, raw in self._messages():
            camera = self.images.get(conn.topic)
            if camera is None:
                for labelled in self.labels[conn.topic]:
                    self._label(labelled, conn, raw)
            elif self._frame(camera, conn, log_ns, raw):
                read = sum(c.result.read for c in self.cameras)
                if read % progress == 0:
                    sent = sum(len(c.result.frames) for c in self.cameras)
                    print(f"  {read}/{in_bag} frames read, {sent} sent", flush=True)

    def _frame(self, camera: Camera, conn: object, log_ns: int, raw: bytes) -> bool:
        """Send one image message of the bag when it decodes, at its time; True when sent."""
        res = camera.result
        index, res.read = res.read, res.read + 1
        try:
            msg = self.bag.reader.deserialize(raw, conn.msgtype)
        except Exception as err:
            res.skipped[f"cannot deserialize: {err}"] += 1
            return False
        try:
            decode_image(msg, conn.msgtype)
        except BadFrameError as err:
            res.skipped[str(err)] += 1
            return False
        self._pace(log_ns)
        bag_stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
        frame = self._send(camera, index, bag_stamp, raw)
        camera.by_bag_stamp[bag_stamp] = frame
        waiting = camera.labels_waiting
        for stamp in [s for s in waiting if s <= bag_stamp]:
            if stamp == bag_stamp:
                self.result.recorder.label(res.scorer, frame.stamp, waiting[stamp])
            del waiting[stamp]  # older ones: their frame was skipped
        if self.opt.rate is None and not self._wait(
            lambda: frame.answered(res.expected), self.opt.frame_timeout
        ):
            res.timed_out += 1
        return True

    def _pace(self, log_ns: int) -> None:
        """At the recorded rate × rate: wait until the message logged at `log_ns` is due."""
        if self.opt.rate is None:
            return
        if self.start is None:
            self.start = (time.monotonic(), log_ns)
        due = self.start[0] + (log_ns - self.start[1]) / 1e9 / self.opt.rate
        self._wait(lambda: False, due - time.monotonic())

    def _label(self, camera: Camera, conn: object, raw: bytes) -> None:
        """Hand a label to the recorder under its frame's sent stamp, or keep it for later."""
        problems = camera.result.scorer.label_problems
        try:
            msg = self.bag.reader.deserialize(raw, conn.msgtype)
        except Exception as err:
            problems[f"label cannot be deserialized: {err}"] += 1
            return
        camera.result.labels += 1
        bag_stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
        try:
            label = image_to_array(msg)
        except BadFrameError as err:
            problems[f"label: {err}"] += 1
            return
        frames = camera.result.frames
        if label.dtype != np.uint8:
            problems[f"label is {msg.encoding}, need mono8"] += 1
        elif bag_stamp in camera.by_bag_stamp:
            sent = camera.by_bag_stamp[bag_stamp].stamp
            self.result.recorder.label(camera.result.scorer, sent, label)
        elif not frames or bag_stamp > frames[-1].bag_stamp:
            camera.labels_waiting[bag_stamp] = label  # its frame comes next

    def _send(self, camera: Camera, index: int, bag_stamp: int, raw: bytes) -> SentFrame:
        """Publish one frame under a stamp its camera has not used before; note the send time."""
        stamp = bag_stamp
        while stamp in camera.by_stamp or stamp in camera.warmup:
            stamp += 1  # a repeated stamp could not be told apart from the earlier frame's
        data = bytes(raw) if stamp == bag_stamp else with_stamp(raw, stamp)
        frame = SentFrame(index, bag_stamp, stamp, 0.0)
        with self.cond:
            camera.by_stamp[stamp] = frame
            camera.frame_index[stamp] = index
        if (why := self.node_gone()) is not None:
            raise ReplayError(why)
        frame.sent = time.monotonic()
        camera.pub.publish(data)
        camera.result.frames.append(frame)
        return frame

    def _drain(self) -> None:
        """Until the last frame of every camera has its outputs (or frame_timeout)."""
        last = [(c.result.frames[-1], c.result.expected) for c in self.cameras if c.result.frames]
        # the node always processes the newest frame of a camera
        self._wait(lambda: all(f.answered(e) for f, e in last), self.opt.frame_timeout)


@cache
def output_typestore() -> Typestore:
    """The standard types plus sleeg_ros/msg/* registered from the .msg files (for recording)."""
    store = get_typestore(Stores.LATEST)
    types = {}
    for file in sorted(msg_dir().glob("*.msg")):
        types.update(get_types_from_msg(file.read_text(), f"sleeg_ros/msg/{file.stem}"))
    store.register(types)
    return store


def msg_dir() -> Path:
    """sleeg_ros's .msg files: the installed package share folder, else the source tree."""
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory("sleeg_ros")) / "msg"
    except (ImportError, KeyError):  # no ament index, or sleeg_ros not installed in it
        return Path(__file__).resolve().parents[2] / "msg"
