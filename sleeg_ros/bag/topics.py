"""The node outputs a replay subscribes to and records, read from the node's outputs table.

A replay matches each output to its frame by the header stamp at the start of the message: an
output without one (anomaly/markers, a MarkerArray for RViz) is neither subscribed nor computed.
anomaly/points is recorded when the node publishes it (`-p publish_points:=true`; off by default).
"""

from __future__ import annotations

from sensor_msgs.msg import Image

from sleeg_ros.outputs import OUTPUTS as NODE_OUTPUTS
from sleeg_ros.outputs import STATUS_TOPIC, topic_types, type_name

IMAGE = type_name(Image)  # the rosbags name of sensor_msgs/msg/Image
STATUS = STATUS_TOPIC  # absolute, shared by every node: the other nodes' statuses are ignored
SCORE = next(o.topic for o in NODE_OUTPUTS if o.name == "score")
MASK = next(o.topic for o in NODE_OUTPUTS if o.name == "mask")
OVERLAY = next(o.topic for o in NODE_OUTPUTS if o.name == "overlay")


def stamped(kind: type) -> bool:
    """Whether a message type starts with a std_msgs/Header.

    >>> from visualization_msgs.msg import MarkerArray
    >>> stamped(Image), stamped(MarkerArray)
    (True, False)
    """
    return next(iter(kind.get_fields_and_field_types().items())) == ("header", "std_msgs/Header")


OUTPUTS: dict[str, tuple[str, type]] = {  # output topic (a camera's) → rosbags type, rclpy type
    topic: (type_name(kind), kind) for topic, kind in topic_types().items() if stamped(kind)
}
FRAME_OUTPUTS = tuple(t for t in OUTPUTS if t != STATUS)  # the per-frame ones, in table order
