"""`sleeg bag eval`'s replay: a bag's frames into the anomaly node over DDS, its outputs recorded.

One rclpy participant (its own context) publishes the frames of an image topic as the bag holds
them (serialized bytes, header stamps kept) and subscribes to every node output as serialized
bytes. The executor thread notes each output's arrival time by its header stamp; a recorder
thread writes the outputs to a rosbag2 and scores anomaly/score images against the bag's labels
with `StreamingMetrics` (the code behind `sleeg eval`).

Latency is measured on one clock in this process: `time.monotonic()` right before a frame is
published and when each of its outputs arrives, matched by header stamp. Frames go out at the
bag's recorded rate (scaled), or with `rate=None` one at a time: the next frame when every output
of the previous one has arrived. A warm-up frame (the first frame, stamped 1 ns, not recorded)
goes first: it waits out the node's first inference and shows which outputs the node publishes;
the node's status counters (its /diagnostics status for the image topic) are reported as
differences from a status taken after it.
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
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.context import Context
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.qos import QoSProfile, QoSReliabilityPolicy
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore
from sensor_msgs.msg import CompressedImage, Image

from sleeg_core.bags import (
    TYPESTORE,
    BagHandle,
    decode_image,
    header_stamp,
    topic_connections,
    with_stamp,
)
from sleeg_core.datasets import LabelMap
from sleeg_core.errors import SleegError
from sleeg_core.image_msgs import BadFrameError, image_to_array
from sleeg_core.metrics import StreamingMetrics
from sleeg_ros.msg import AnomalyObstacleArray

IMAGE = "sensor_msgs/msg/Image"
STATUS = "/diagnostics"  # absolute: shared by every node; the others' statuses are ignored
SCORE = "anomaly/score"
OUTPUTS: dict[str, tuple[str, type]] = {  # node output (name) → rosbags type, rclpy type
    "segmentation": (IMAGE, Image),
    "segmentation/color": (IMAGE, Image),
    SCORE: (IMAGE, Image),
    "anomaly/mask": (IMAGE, Image),
    "anomaly/obstacles": ("sleeg_ros/msg/AnomalyObstacleArray", AnomalyObstacleArray),
    "overlay": (IMAGE, Image),
    STATUS: ("diagnostic_msgs/msg/DiagnosticArray", DiagnosticArray),
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
class ReplayOptions:
    bag: Path
    image_topic: str
    label_topic: str | None
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


@dataclass
class SentFrame:
    index: int  # position among the image topic's messages
    bag_stamp: int  # header stamp in the bag (ns)
    stamp: int  # header stamp sent (the bag's, unless it repeats an earlier one)
    sent: float  # time.monotonic() right before publishing
    arrivals: dict[str, float] = field(default_factory=dict)  # output → time.monotonic()


@dataclass
class NodeStatus:
    stamp: int  # header stamp (node clock, ns)
    values: dict[str, str]


@dataclass
class ReplayResult:
    options: ReplayOptions
    in_bag: int  # image messages the bag index lists
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
    problems: list[str] = field(default_factory=list)  # why the run is incomplete
    bag_note: str = ""
    node_pid: int | None = None
    node_exit: int | None = None
    recorder: Recorder | None = None


class ReplayError(Exception):
    """The replay cannot go on: the node exited, left, never came up or never answered."""


class Recorder:
    """Writes node outputs into a rosbag2 and scores anomaly/score images against labels.

    Runs in its own thread; scores and labels meet by sent header stamp, whichever comes first.
    """

    def __init__(
        self,
        folder: Path,
        topics: dict[str, str],
        label_map: LabelMap | None,
        frames: dict[int, int],
        record: bool = True,
    ) -> None:
        self.label_map = label_map  # None: no labels, nothing to score
        self.frame_index = frames  # sent stamp → frame index (filled by the main thread)
        self.items: queue.Queue[tuple | None] = queue.Queue()
        self.counts: Counter[str] = Counter()
        self.label_problems: Counter[str] = Counter()
        self.metrics = StreamingMetrics()
        self.scored: list[int] = []  # frame indices whose score met a label
        self.unlabelled_scores = 0
        self.error = ""
        self.writer: Writer | None = None  # None: outputs are counted and scored, not written
        self.conns = {}
        if record:
            store = output_typestore()
            self.writer = Writer(folder, version=9, storage_plugin=StoragePlugin.MCAP)
            self.writer.open()
            self.conns = {
                short: self.writer.add_connection(full, OUTPUTS[short][0], typestore=store)
                for short, full in topics.items()
            }
        self._labels: dict[int, np.ndarray] = {}
        self._scores: dict[int, np.ndarray] = {}
        self.thread = threading.Thread(target=self._run, name="sleeg-bag-recorder", daemon=True)
        self.thread.start()

    def output(self, short: str, log_ns: int, stamp: int, raw: bytes) -> None:
        self.items.put(("output", short, log_ns, stamp, raw))

    def label(self, stamp: int, label: np.ndarray) -> None:
        self.items.put(("label", stamp, label))

    def close(self) -> None:
        """Finish the queue and close the bag (its index and metadata.yaml are written here)."""
        self.items.put(None)
        self.thread.join()
        if self.writer is not None:
            self.writer.close()

    def _run(self) -> None:
        while (item := self.items.get()) is not None:
            try:
                if item[0] == "output":
                    self._record(*item[1:])
                else:
                    self._add_label(*item[1:])
            except Exception as err:  # keep recording; the report names the first failure
                self.error = self.error or f"{err.__class__.__name__}: {err}"

    def _record(self, short: str, log_ns: int, stamp: int, raw: bytes) -> None:
        if self.writer is not None:
            self.writer.write(self.conns[short], log_ns, raw)
        self.counts[short] += 1
        if short != SCORE or stamp not in self.frame_index or self.label_map is None:
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

    def _add_label(self, stamp: int, label: np.ndarray) -> None:
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
        """Scores that met no label (call after close())."""
        return self.unlabelled_scores + len(self._scores)


class Replay:
    """One `sleeg bag eval` run: node, participant, recorder; `run()` returns what happened."""

    def __init__(self, options: ReplayOptions, bag: BagHandle) -> None:
        self.opt = options
        self.bag = bag
        reader = bag.reader
        self.image_conns = topic_connections(reader, options.image_topic, bag.path)
        self.label_conns = (
            topic_connections(reader, options.label_topic, bag.path) if options.label_topic else []
        )
        self.compressed = self.image_conns[0].msgtype.endswith("CompressedImage")
        in_bag = sum(c.msgcount for c in self.image_conns)
        if not in_bag:
            raise SleegError(f"topic '{options.image_topic}' in {bag.path} has no messages")
        self.result = ReplayResult(options, in_bag=in_bag, bag_note=bag.note)
        if bag.note:
            self.result.problems.append(f"damaged bag: {bag.note}")
        ns = options.namespace.rstrip("/")
        self.topics = {short: short if short == STATUS else f"{ns}/{short}" for short in OUTPUTS}
        self.proc: subprocess.Popen | None = None
        self.cond = threading.Condition()
        self.by_stamp: dict[int, SentFrame] = {}
        self.frame_index: dict[int, int] = {}
        self.warmup: dict[int, dict[str, float]] = {}  # warm-up stamp → output → arrival
        self.statuses: list[NodeStatus] = []
        self.last_output_wall = 0  # time.time_ns() of the latest frame output
        self.matched = False
        self.unmatched = 0

    # ------------------------------------------------------------------ set-up and tear-down
    def run(self) -> ReplayResult:
        """Start (or find) the node, warm it up, replay, drain; never raises on a node death."""
        res = self.result
        label_map = self.opt.label_map if self.opt.label_topic else None
        res.recorder = Recorder(
            self.opt.out / "outputs", self.topics, label_map, self.frame_index, self.opt.record
        )
        self.context = Context()
        # not sys.argv: rcl would take its `-p name:=value` words for remapping rules
        rclpy.init(args=["sleeg_bag_eval"], context=self.context)
        self._make_participant()
        try:
            if not self.opt.attach:
                self._start_node()
            self._wait_ready()
            self._warm_up()
            res.baseline = self._status_after(self.last_output_wall)
            if res.baseline is None:
                res.problems.append(f"no node status within {STATUS_WAIT_S:.0f} s after warm-up")
            self._replay()
            self._drain()
            res.final = self._status_after(self.last_output_wall)
            if res.final is None:
                res.problems.append(f"no node status within {STATUS_WAIT_S:.0f} s after replay")
        except ReplayError as err:
            res.problems.append(str(err))
        except KeyboardInterrupt:
            res.problems.append("interrupted")
        finally:
            self._stop_node()
            self._close_participant()
            res.recorder.close()
            res.unmatched_outputs = self.unmatched
            if res.recorder.error:
                res.problems.append(f"recording the outputs failed: {res.recorder.error}")
        return res

    def _make_participant(self) -> None:
        self.node = rclpy.create_node("sleeg_bag_eval", context=self.context)
        # the node names its status "<node name>: <input topic>"
        self.status_suffix = f": {self.node.resolve_topic_name(self.opt.image_topic)}"
        kind = CompressedImage if self.compressed else Image
        self.pub = self.node.create_publisher(kind, self.opt.image_topic, RELIABLE)
        self.subs = [
            self.node.create_subscription(
                OUTPUTS[short][1],
                full,
                lambda raw, s=short: self._on_output(s, raw),
                RELIABLE,
                raw=True,
            )
            for short, full in self.topics.items()
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
        """The anomaly node with the params file, -p overrides and remaps of this run; its
        image_transport follows the bag's message type."""
        args = ["--ros-args"]
        if self.opt.params_file:
            args += ["--params-file", str(self.opt.params_file)]
        transport = f"image_transport:={'compressed' if self.compressed else 'raw'}"
        for p in [f"status_period_s:={self.opt.status_period}", *self.opt.overrides, transport]:
            args += ["-p", p]
        input_name = "image/compressed" if self.compressed else "image"
        args += ["-r", f"{input_name}:={self.opt.image_topic}"]
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
        if self.matched and self.pub.get_subscription_count() == 0:
            return f"the attached node left: nobody subscribes to {self.opt.image_topic} any more"
        return None

    # ------------------------------------------------------------------ DDS callbacks
    def _on_output(self, short: str, raw: bytes) -> None:
        now, wall = time.monotonic(), time.time_ns()
        stamp = header_stamp(raw)
        if short == STATUS:
            msg = TYPESTORE.deserialize_cdr(raw, OUTPUTS[STATUS][0])
            ours = [st for st in msg.status if st.name.endswith(self.status_suffix)]
            if not ours:
                return  # another node's diagnostics
            values = {kv.key: kv.value for kv in ours[0].values}
            with self.cond:
                self.statuses.append(NodeStatus(stamp, values))
                self.cond.notify_all()
        else:
            with self.cond:
                frame = self.by_stamp.get(stamp)
                if frame is not None:
                    frame.arrivals.setdefault(short, now)
                elif stamp in self.warmup:
                    self.warmup[stamp].setdefault(short, now)
                else:
                    self.unmatched += 1
                self.last_output_wall = wall
                self.cond.notify_all()
            if stamp in self.warmup:
                return  # the warm-up frame is not part of the recording
        self.result.recorder.output(short, wall, stamp, raw)

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
        """Until the node subscribes to the image topic and publishes every output."""

        def ready() -> bool:
            return self.pub.get_subscription_count() > 0 and all(
                s.get_publisher_count() > 0 for s in self.subs
            )

        if (why := self.node_gone()) is not None:
            raise ReplayError(why)
        if not self._wait(ready, self.opt.startup_timeout):
            where = f"node in namespace '{self.opt.namespace}'" if self.opt.attach else "node"
            transport = "compressed" if self.compressed else "raw"
            raise ReplayError(
                f"no {where} subscribed to {self.opt.image_topic} (image_transport {transport}) "
                f"and published {', '.join(self.topics.values())} within "
                f"{self.opt.startup_timeout:.0f} s"
            )
        self.matched = True

    def _warm_up(self) -> None:
        """Send the first decodable frame (stamps 1, 2, … ns) until the node answers; learn the
        outputs it publishes per frame."""
        raw = next(self._decodable_frames(), None)
        if raw is None:
            raise ReplayError(f"no decodable frame on {self.opt.image_topic}")
        end = time.monotonic() + self.opt.startup_timeout
        answered = lambda: any(self.warmup.values())  # noqa: E731
        while not answered():
            if time.monotonic() > end:
                raise ReplayError(
                    f"the node did not answer a frame within {self.opt.startup_timeout:.0f} s"
                )
            stamp = len(self.warmup) + 1
            with self.cond:
                self.warmup[stamp] = {}
            self.pub.publish(with_stamp(raw, stamp))
            self._wait(answered, 2.0)
        first = next(s for s, got in self.warmup.items() if got)
        seen = lambda: len(self.warmup[first])  # noqa: E731
        while True:  # until no further output topic shows up for SETTLE_S
            n = seen()
            if n == len(FRAME_OUTPUTS) or not self._wait(lambda n=n: seen() > n, SETTLE_S):
                break
        self.result.expected = tuple(t for t in FRAME_OUTPUTS if t in self.warmup[first])
        last = max(self.warmup)  # a warm-up frame still in the node: let it finish
        self._wait(lambda: len(self.warmup[last]) >= seen(), self.opt.frame_timeout)
        self.result.warmup_frames = len(self.warmup)

    def _status_after(self, wall_ns: int) -> NodeStatus | None:
        """The first node status stamped after `wall_ns` (it counts everything before)."""
        after = lambda: [s for s in self.statuses if s.stamp > wall_ns + CLOCK_MARGIN_NS]  # noqa: E731
        return after()[0] if self._wait(lambda: bool(after()), STATUS_WAIT_S) else None

    # ------------------------------------------------------------------ replay
    def _messages(self, image_only: bool = False) -> Iterator[tuple[object, int, bytes]]:
        """(connection, log time, raw) of the image (and label) topic in log-time order; a read
        error ends the iteration and is recorded as a problem."""
        conns = self.image_conns + ([] if image_only else self.label_conns)
        n = 0
        try:
            for conn, log_ns, raw in self.bag.reader.messages(connections=conns):
                n += 1
                yield conn, log_ns, raw
        except Exception as err:
            if not image_only:
                frames = self.result.read
                self.result.problems.append(
                    f"reading the bag failed after {n} message(s) ({frames} of "
                    f"{self.result.in_bag} frames): {err.__class__.__name__}: {err}"
                )

    def _decodable_frames(self) -> Iterator[bytes]:
        for conn, _t, raw in self._messages(image_only=True):
            try:
                decode_image(self.bag.reader.deserialize(raw, conn.msgtype), conn.msgtype)
            except Exception:  # skipped (and counted) in the replay itself
                continue
            yield bytes(raw)

    def _replay(self) -> None:
        res = self.result
        recorder = res.recorder
        labels_waiting: dict[int, np.ndarray] = {}  # bag stamp → label read before its frame
        by_bag_stamp: dict[int, SentFrame] = {}
        start: tuple[float, int] | None = None  # (monotonic, log ns) of the first frame
        progress = max(1, res.in_bag // 10)
        image_topic = self.opt.image_topic
        for conn, log_ns, raw in self._messages():
            try:
                msg = self.bag.reader.deserialize(raw, conn.msgtype)
            except Exception as err:
                if conn.topic == image_topic:
                    res.read += 1
                    res.skipped[f"cannot deserialize: {err}"] += 1
                else:
                    recorder.label_problems[f"label cannot be deserialized: {err}"] += 1
                continue
            bag_stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
            if conn.topic != image_topic:
                res.labels += 1
                self._route_label(msg, bag_stamp, by_bag_stamp, labels_waiting)
                continue
            index, res.read = res.read, res.read + 1
            try:
                decode_image(msg, conn.msgtype)
            except BadFrameError as err:
                res.skipped[str(err)] += 1
                continue
            if self.opt.rate is not None:
                if start is None:
                    start = (time.monotonic(), log_ns)
                due = start[0] + (log_ns - start[1]) / 1e9 / self.opt.rate
                self._wait(lambda: False, due - time.monotonic())
            frame = self._send(index, bag_stamp, raw)
            by_bag_stamp[bag_stamp] = frame
            for stamp in [s for s in labels_waiting if s <= bag_stamp]:
                if stamp == bag_stamp:
                    recorder.label(frame.stamp, labels_waiting[stamp])
                del labels_waiting[stamp]  # older ones: their frame was skipped
            if self.opt.rate is None and not self._wait(
                lambda f=frame: all(t in f.arrivals for t in res.expected),
                self.opt.frame_timeout,
            ):
                res.timed_out += 1
            if res.read % progress == 0:
                print(f"  {res.read}/{res.in_bag} frames read, {len(res.frames)} sent", flush=True)

    def _route_label(
        self,
        msg: object,
        bag_stamp: int,
        by_bag_stamp: dict[int, SentFrame],
        waiting: dict[int, np.ndarray],
    ) -> None:
        """Hand a label to the recorder under its frame's sent stamp, or keep it for later."""
        try:
            label = image_to_array(msg)
        except BadFrameError as err:
            self.result.recorder.label_problems[f"label: {err}"] += 1
            return
        if label.dtype != np.uint8:
            self.result.recorder.label_problems[f"label is {msg.encoding}, need mono8"] += 1
        elif bag_stamp in by_bag_stamp:
            self.result.recorder.label(by_bag_stamp[bag_stamp].stamp, label)
        elif not self.result.frames or bag_stamp > self.result.frames[-1].bag_stamp:
            waiting[bag_stamp] = label  # its frame comes next

    def _send(self, index: int, bag_stamp: int, raw: bytes) -> SentFrame:
        """Publish one frame under a stamp not used before; note the send time."""
        stamp = bag_stamp
        while stamp in self.by_stamp or stamp in self.warmup:
            stamp += 1  # a repeated stamp could not be told apart from the earlier frame's
        data = bytes(raw) if stamp == bag_stamp else with_stamp(raw, stamp)
        frame = SentFrame(index, bag_stamp, stamp, 0.0)
        with self.cond:
            self.by_stamp[stamp] = frame
            self.frame_index[stamp] = index
        if (why := self.node_gone()) is not None:
            raise ReplayError(why)
        frame.sent = time.monotonic()
        self.pub.publish(data)
        self.result.frames.append(frame)
        return frame

    def _drain(self) -> None:
        """Until the last frame's outputs are in (or frame_timeout)."""
        frames, expected = self.result.frames, self.result.expected
        if not frames:
            return
        last = frames[-1]  # the node always processes the newest frame it has
        self._wait(lambda: all(t in last.arrivals for t in expected), self.opt.frame_timeout)


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
        return Path(__file__).resolve().parents[1] / "msg"
