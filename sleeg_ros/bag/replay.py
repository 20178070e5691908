"""`sleeg bag eval`'s replay: a bag's frames into the anomaly node over DDS, its outputs recorded.

One rclpy participant (its own context, `participant.py`) publishes the frames of one or more
image topics as the bag holds them (serialized bytes, header stamps kept), each to its camera of
the node, and subscribes to every node output as serialized bytes. The executor thread notes each
output's arrival time by its camera and header stamp (two cameras may share a stamp); a recorder
thread (`recorder.py`) writes the outputs to a rosbag2 and scores each camera's anomaly/score
images against its labels in the bag with `StreamingMetrics` (the code behind `sleeg eval`).

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
import threading
import time
from collections.abc import Callable, Iterator

import numpy as np

from sleeg_core.data.bags import BagHandle, decode_image, with_stamp
from sleeg_core.data.image_msgs import BadFrameError, image_to_array
from sleeg_ros.bag.camera import Camera
from sleeg_ros.bag.node_process import NodeProcess
from sleeg_ros.bag.options import ReplayOptions
from sleeg_ros.bag.participant import Participant
from sleeg_ros.bag.recorder import Recorder
from sleeg_ros.bag.results import NodeStatus, ReplayResult, SentFrame
from sleeg_ros.bag.topics import FRAME_OUTPUTS, OUTPUTS, STATUS

POLL_S = 0.05
SETTLE_S = 0.5  # after the warm-up's first output: how long to wait for more output topics
STATUS_WAIT_S = 15.0  # at most this long for a status after the warm-up / after the replay
CLOCK_MARGIN_NS = 20_000_000  # a status this much after an output includes that output


class ReplayError(Exception):
    """The replay cannot go on: the node exited, left, never came up or never answered."""


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
        self.node: NodeProcess | None = None  # the node started here (None: --attach)
        self.dds: Participant | None = None
        self.cond = threading.Condition()
        self.matched = False
        self.start: tuple[float, int] | None = None  # (monotonic, log ns) of the first frame

    # ------------------------------------------------------------------ set-up and tear-down
    def run(self) -> ReplayResult:
        """Start (or find) the node, warm it up, replay, drain; never raises on a node death."""
        res = self.result
        topics = {t: OUTPUTS[s][0] for c in self.cameras for s, t in c.result.topics.items()}
        topics[STATUS] = OUTPUTS[STATUS][0]
        res.recorder = Recorder(self.opt.out / "outputs", topics, self.opt.record)
        self.dds = Participant(self.cameras, res.recorder, self.cond)
        try:
            if not self.opt.attach:
                self.node = NodeProcess(self.opt, self.cameras)
                res.node_pid = self.node.start()
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
            if self.node is not None:
                res.node_exit = self.node.stop()
            self.dds.close()
            res.recorder.close()
            if res.recorder.error:
                res.problems.append(f"recording the outputs failed: {res.recorder.error}")
        return res

    def node_gone(self) -> str | None:
        """Why the node is no longer there, or None."""
        if self.node is not None:
            return self.node.gone()
        if self.matched and (left := [c.opt.image_topic for c in self.cameras if not c.subscribed]):
            return f"the attached node left: nobody subscribes to {', '.join(left)} any more"
        return None

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
        if (why := self.node_gone()) is not None:
            raise ReplayError(why)
        if not self._wait(self.dds.ready, self.opt.startup_timeout):
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
        wall_ns = self.dds.last_output_wall
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
