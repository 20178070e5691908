"""The anomaly node's outputs: one table of names, message types, topics and what each needs.

Every per-frame output is published under its camera's prefix (`c/anomaly/score`; the single
camera: unprefixed) and switched by parameter `publish_<name>`. `needs` says which model output it
is computed from ("ids": the train ids, "score": the anomaly score); `thresholded` ones need a
threshold in force (none: they are not published); `spatial` ones hold metres in the node's
`output_frame` and need the camera's geometry (sleeg_ros.camera_geometry); every output keeps the
input frame's header, but the 3D ones (`in_output_frame`) have output_frame as its frame_id;
`default` is their `publish_<name>` default. The node, its parameters, the bag replay and the
tests read this table; /diagnostics is the node's status topic, not a per-frame output.

>>> [o.name for o in OUTPUTS if o.needs == "ids"]
['segmentation', 'color']
>>> [o.name for o in OUTPUTS if o.spatial]
['obstacles', 'points', 'markers']
>>> type_name(Image)
'sensor_msgs/msg/Image'
"""

from __future__ import annotations

from dataclasses import dataclass

from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import Image, PointCloud2
from visualization_msgs.msg import MarkerArray

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
    spatial: bool = False  # metres in output_frame, from the camera's geometry
    in_output_frame: bool = False  # header frame_id output_frame (else the input's header)
    default: bool = True  # publish_<name>'s default


OUTPUTS: tuple[Output, ...] = (
    Output("segmentation", Image, "segmentation", "ids", "mono8"),
    Output("color", Image, "segmentation/color", "ids", "rgb8"),
    Output("score", Image, "anomaly/score", "score", "32FC1"),
    Output("mask", Image, "anomaly/mask", "score", "mono8", thresholded=True),
    Output(
        "obstacles",
        AnomalyObstacleArray,
        "anomaly/obstacles",
        "score",
        thresholded=True,
        spatial=True,
    ),
    Output("overlay", Image, "overlay", "score", "rgb8", thresholded=True),
    # the mask's pixels in 3D (x, y, z, score), for point-cloud filters and costmaps
    Output(
        "points",
        PointCloud2,
        "anomaly/points",
        "score",
        thresholded=True,
        spatial=True,
        in_output_frame=True,
        default=False,
    ),
    # one box and one label per located obstacle, for RViz
    Output(
        "markers",
        MarkerArray,
        "anomaly/markers",
        "score",
        thresholded=True,
        spatial=True,
        in_output_frame=True,
    ),
)
OUTPUT_NAMES = tuple(o.name for o in OUTPUTS)


def type_name(msg_type: type) -> str:
    """A message class's ROS type name, e.g. `sensor_msgs/msg/Image`."""
    return f"{msg_type.__module__.split('.')[0]}/msg/{msg_type.__name__}"


def topic_types(status: bool = True) -> dict[str, type]:
    """{relative topic: message type} of every output, then /diagnostics when `status`."""
    types = {o.topic: o.msg_type for o in OUTPUTS}
    return types | {STATUS_TOPIC: STATUS_TYPE} if status else types
