"""One camera's part of a replay: its image and label connections in the bag, its publisher, the
frames sent by stamp, its warm-up and the node's statuses for it."""

from __future__ import annotations

import numpy as np
from rclpy.publisher import Publisher

from sleeg_core.common.errors import SleegError
from sleeg_core.data.bags import BagHandle, topic_connections
from sleeg_core.data.labels import LabelMap
from sleeg_ros.bag.options import CameraOptions
from sleeg_ros.bag.results import CameraResult, NodeStatus, SentFrame
from sleeg_ros.bag.scorer import Scorer
from sleeg_ros.bag.topics import FRAME_OUTPUTS


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
