"""A rosbag2 with an image topic and its label topic, read as a labelled evaluation dataset."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from sleeg_core.common.errors import SleegError
from sleeg_core.data.bags.messages import IMAGE_TYPES, header_stamp
from sleeg_core.data.bags.reading import bag_summary, iter_frames, open_reader, topic_connections
from sleeg_core.data.labels import AnomalySample, LabelMap


class LabelledBag:
    """A rosbag2 with an image topic and its label topic (`<image topic>/labels`, mono8 0/1/255,
    matched by header stamp) as a labelled dataset: len() and iteration over AnomalySample."""

    def __init__(self, path: Path, label_map: LabelMap) -> None:
        self.path, self.label_map = Path(path), label_map
        summary = bag_summary(self.path)
        images = [
            t
            for t, info in summary["topics"].items()
            if info["type"] in IMAGE_TYPES and not t.endswith("/labels")
        ]
        pairs = [(t, f"{t.removesuffix('/compressed')}/labels") for t in images]
        pairs = [(i, lab) for i, lab in pairs if lab in summary["topics"]]
        if len(pairs) != 1:
            have = ", ".join(summary["topics"]) or "none"
            raise SleegError(
                f"bag {self.path} needs exactly one image topic with a '<topic>/labels' topic "
                f"to be evaluated; topics: {have}"
            )
        self.image_topic, self.label_topic = pairs[0]
        self.count = summary["topics"][self.label_topic]["count"]

    def __len__(self) -> int:
        return self.count

    def _labels(self) -> dict[int, np.ndarray]:
        reader = open_reader(self.path)
        try:
            conns = topic_connections(reader, self.label_topic, self.path)
            labels = {}
            for conn, _t, raw in reader.messages(connections=conns):
                msg = reader.deserialize(raw, conn.msgtype)
                rows = np.frombuffer(msg.data, np.uint8, count=msg.step * msg.height)
                label = rows.reshape(msg.height, msg.step)[:, : msg.width]
                labels[header_stamp(raw)] = label
            return labels
        finally:
            reader.close()

    def __iter__(self) -> Iterator[AnomalySample]:
        labels = self._labels()
        for frame in iter_frames(self.path, self.image_topic):
            label = labels.get(frame.stamp_ns)
            if label is None:
                continue  # only labelled frames are evaluated
            if frame.image is None:
                raise SleegError(
                    f"{self.path}: frame {frame.index} cannot be decoded: {frame.error}"
                )
            name = f"{frame.index:06d}"
            if label.shape != frame.image.shape[:2]:
                raise SleegError(
                    f"{self.path}: label {label.shape} and frame {frame.image.shape[:2]} of "
                    f"frame {name} differ in size"
                )
            source = f"{self.path}:{name}"
            yield AnomalySample(
                frame.image, self.label_map.apply(label, source), name, self.path, self.path
            )
