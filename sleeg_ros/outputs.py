"""The anomaly node's outputs: one table of names, message types, topics and what each needs.

Every per-frame output is published under its camera's prefix (`c/anomaly/score`; the single
camera: unprefixed) and switched by parameter `publish_<name>`. `needs` says which model output it
is computed from ("ids": the train ids, "score": the anomaly score); `thresholded` ones need a
threshold in force (none: they are not published). The node, its parameters, the bag replay and
the tests read this table; /diagnostics is the node's status topic, not a per-frame output.

>>> [o.name for o in OUTPUTS if o.needs == "ids"]
['segmentation', 'color']
>>> type_name(Image)
'sensor_msgs/msg/Image'
"""

from __future__ import annotations

from dataclasses import dataclass

from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import Image

from sleeg_ros.msg import AnomalyObstacleArray

STATUS_TOPIC = "/diagnostics"  # absolute: shared by every node
STATUS_TYPE = DiagnosticArray


@dataclass(frozen=True)
class Output:
    """One per-frame output of the node."""

    name: str  # parameter publish_<name>
    msg_type: type
    topic: str  # relative to the camera's prefix
    needs: str  # "ids" (train ids) | "score" (anomaly score)
    encoding: str = ""  # of an Image output
    thresholded: bool = False  # computed from the mask at the threshold in force


OUTPUTS: tuple[Output, ...] = (
    Output("segmentation", Image, "segmentation", "ids", "mono8"),
    Output("color", Image, "segmentation/color", "ids", "rgb8"),
    Output("score", Image, "anomaly/score", "score", "32FC1"),
    Output("mask", Image, "anomaly/mask", "score", "mono8", thresholded=True),
    Output("obstacles", AnomalyObstacleArray, "anomaly/obstacles", "score", thresholded=True),
    Output("overlay", Image, "overlay", "score", "rgb8", thresholded=True),
)
OUTPUT_NAMES = tuple(o.name for o in OUTPUTS)


def type_name(msg_type: type) -> str:
    """A message class's ROS type name, e.g. `sensor_msgs/msg/Image`."""
    return f"{msg_type.__module__.split('.')[0]}/msg/{msg_type.__name__}"


def topic_types(status: bool = True) -> dict[str, type]:
    """{relative topic: message type} of every output, then /diagnostics when `status`."""
    types = {o.topic: o.msg_type for o in OUTPUTS}
    return types | {STATUS_TOPIC: STATUS_TYPE} if status else types
