"""The node outputs a replay subscribes to and records, read from the node's outputs table."""

from __future__ import annotations

from sensor_msgs.msg import Image

from sleeg_ros.outputs import OUTPUTS as NODE_OUTPUTS
from sleeg_ros.outputs import STATUS_TOPIC, topic_types, type_name

IMAGE = type_name(Image)  # the rosbags name of sensor_msgs/msg/Image
STATUS = STATUS_TOPIC  # absolute, shared by every node: the other nodes' statuses are ignored
SCORE = next(o.topic for o in NODE_OUTPUTS if o.name == "score")
OVERLAY = next(o.topic for o in NODE_OUTPUTS if o.name == "overlay")
OUTPUTS: dict[str, tuple[str, type]] = {  # output topic (a camera's) → rosbags type, rclpy type
    topic: (type_name(kind), kind) for topic, kind in topic_types().items()
}
FRAME_OUTPUTS = tuple(t for t in OUTPUTS if t != STATUS)  # the per-frame ones, in table order
