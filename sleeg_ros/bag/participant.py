"""The DDS side of a replay: one rclpy participant in its own context, a publisher per camera and
a raw subscription per node output. Its executor thread notes each output's arrival time on its
camera by header stamp (two cameras may share a stamp) and hands the output to the recorder."""

from __future__ import annotations

import contextlib
import threading
import time

import rclpy
from rclpy.context import Context
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.qos import QoSProfile, QoSReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image

from sleeg_core.data.bags import TYPESTORE, header_stamp
from sleeg_ros.bag.camera import Camera
from sleeg_ros.bag.recorder import Recorder
from sleeg_ros.bag.results import NodeStatus
from sleeg_ros.bag.scorer import SCORED
from sleeg_ros.bag.topics import OUTPUTS, STATUS

RELIABLE = QoSProfile(depth=10, reliability=QoSReliabilityPolicy.RELIABLE)


class Participant:
    """Publishes each camera's frames and receives the node's outputs and statuses; arrivals are
    noted under `cond`, which is notified on each."""

    def __init__(self, cameras: list[Camera], recorder: Recorder, cond: threading.Condition):
        self.cameras = cameras
        self.recorder = recorder
        self.cond = cond
        self.last_output_wall = 0  # time.time_ns() of the latest frame output
        self.context = Context()
        # not sys.argv: rcl would take its `-p name:=value` words for remapping rules
        rclpy.init(args=["sleeg_bag_eval"], context=self.context)
        self.node = rclpy.create_node("sleeg_bag_eval", context=self.context)
        status = OUTPUTS[STATUS][1]
        self.subs = [
            self.node.create_subscription(status, STATUS, self._on_status, RELIABLE, raw=True)
        ]
        for camera in cameras:
            self._add_camera(camera)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.spinner = threading.Thread(target=self._spin, name="sleeg-bag-dds", daemon=True)
        self.spinner.start()

    def _add_camera(self, camera: Camera) -> None:
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

    def ready(self) -> bool:
        """The node subscribes to every image topic and publishes every output."""
        return all(c.subscribed for c in self.cameras) and all(
            s.get_publisher_count() > 0 for s in self.subs
        )

    def close(self) -> None:
        self.executor.shutdown()
        self.spinner.join(timeout=5.0)
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)

    def _spin(self) -> None:
        with contextlib.suppress(ExternalShutdownException):
            self.executor.spin()

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
            self.recorder.output(STATUS, wall, raw)

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
        scorer = camera.result.scorer if short in SCORED else None
        self.recorder.output(camera.result.topics[short], wall, raw, scorer, short)
