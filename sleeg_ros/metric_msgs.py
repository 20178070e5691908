"""The node's obstacle and 3D messages from sleeg_core's results (pure message building).

- anomaly/obstacles (`obstacle_array`): the pixel boxes and scores of `find_obstacles` with each
  obstacle's `Location` in metres (NaN and METHOD_NONE when unknown); the header is the input
  frame's, `output_frame` names the frame of the metres.
- anomaly/points (`point_cloud`): PointCloud2 with float32 fields x, y, z, score, one row (the
  layout of sensor_msgs_py.point_cloud2.create_cloud, built here with numpy).
- anomaly/markers (`obstacle_markers`): DELETEALL first (no box of an earlier frame lingers),
  then per located obstacle a CUBE sized by its metres (ids 2i) and a TEXT_VIEW_FACING label with
  its mean score and distance (ids 2i + 1), each with the `lifetime` given.
The 3D messages' header is the input frame's stamp with frame_id `output_frame`.
"""

from __future__ import annotations

import math

import numpy as np
from builtin_interfaces.msg import Duration
from geometry_msgs.msg import Point, Quaternion
from sensor_msgs.msg import PointCloud2, PointField, RegionOfInterest
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from sleeg_core.eval.obstacles import Obstacle
from sleeg_core.projection.locate import Location
from sleeg_ros.msg import AnomalyObstacle, AnomalyObstacleArray

METHODS = {  # Location.method → AnomalyObstacle constant
    "none": AnomalyObstacle.METHOD_NONE,
    "ground": AnomalyObstacle.METHOD_GROUND,
    "depth": AnomalyObstacle.METHOD_DEPTH,
}
POINT_FIELDS = ("x", "y", "z", "score")
BOX_COLOR = ColorRGBA(r=1.0, g=0.35, b=0.0, a=0.6)
TEXT_COLOR = ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0)
TEXT_SIZE_M = 0.4  # label letter height
TEXT_GAP_M = 0.3  # label above the box
MIN_SIZE_M = 0.05  # a box edge is never thinner (RViz hides a zero-size box)


def obstacle_array(
    header: Header,
    threshold: float,
    mask: np.ndarray,
    obstacles: list[Obstacle],
    locations: list[Location],
    output_frame: str,
) -> AnomalyObstacleArray:
    """The obstacles message of a frame's mask, its blobs and their locations (same order)."""
    out = AnomalyObstacleArray(
        header=header,
        threshold=float(threshold),
        anomalous_fraction=float(np.count_nonzero(mask)) / mask.size,
        output_frame=output_frame,
    )
    out.obstacles = [_obstacle(o, loc) for o, loc in zip(obstacles, locations, strict=True)]
    return out


def _obstacle(o: Obstacle, loc: Location) -> AnomalyObstacle:
    return AnomalyObstacle(
        roi=RegionOfInterest(x_offset=o.x, y_offset=o.y, width=o.width, height=o.height),
        pixel_area=o.pixel_area,
        mean_score=o.mean_score,
        max_score=o.max_score,
        centroid_x=o.centroid_x,
        centroid_y=o.centroid_y,
        method=METHODS[loc.method],
        contact=Point(x=float(loc.x), y=float(loc.y), z=float(loc.z)),
        distance=float(loc.distance),
        width=float(loc.width),
        height=float(loc.height),
    )


def metric_header(header: Header, output_frame: str) -> Header:
    """The input frame's stamp in `output_frame`."""
    return Header(stamp=header.stamp, frame_id=output_frame)


def point_cloud(header: Header, points: np.ndarray) -> PointCloud2:
    """N×4 float32 (x, y, z, score) → an unordered PointCloud2 (height 1) stamped `header`."""
    data = np.ascontiguousarray(points, dtype="<f4").reshape(-1, len(POINT_FIELDS))
    fields = [
        PointField(name=name, offset=4 * i, datatype=PointField.FLOAT32, count=1)
        for i, name in enumerate(POINT_FIELDS)
    ]
    step = 4 * len(POINT_FIELDS)
    return PointCloud2(
        header=header,
        height=1,
        width=len(data),
        fields=fields,
        is_bigendian=False,
        point_step=step,
        row_step=step * len(data),
        data=data.tobytes(),
        is_dense=bool(np.isfinite(data).all()),
    )


def obstacle_markers(
    header: Header,
    namespace: str,
    obstacles: list[Obstacle],
    locations: list[Location],
    camera_xy: tuple[float, float],
    lifetime_s: float,
) -> MarkerArray:
    """DELETEALL, then a box and a label per located obstacle (see the module docstring); each
    box faces the camera at `camera_xy` (its x-y position in the header's frame)."""
    lifetime = Duration(sec=int(lifetime_s), nanosec=round(lifetime_s % 1 * 1e9) % 10**9)
    markers = [Marker(header=header, ns=namespace, action=Marker.DELETEALL)]
    for i, (o, loc) in enumerate(zip(obstacles, locations, strict=True)):
        values = (loc.x, loc.y, loc.z, loc.distance, loc.width, loc.height)
        if loc.method == "none" or not all(math.isfinite(v) for v in values):
            continue
        box = Marker(header=header, ns=namespace, id=2 * i, type=Marker.CUBE, lifetime=lifetime)
        width, height = max(loc.width, MIN_SIZE_M), max(loc.height, MIN_SIZE_M)
        box.pose.position = Point(x=float(loc.x), y=float(loc.y), z=float(loc.z + height / 2))
        box.pose.orientation = _facing(camera_xy, (loc.x, loc.y))
        box.scale.x, box.scale.y, box.scale.z = width, width, height  # depth unknown: as wide
        box.color = BOX_COLOR
        text = Marker(
            header=header,
            ns=namespace,
            id=2 * i + 1,
            type=Marker.TEXT_VIEW_FACING,
            lifetime=lifetime,
            text=f"{o.mean_score:.2f} @ {loc.distance:.1f} m",
        )
        top = float(loc.z + height + TEXT_GAP_M)
        text.pose.position = Point(x=float(loc.x), y=float(loc.y), z=top)
        text.scale.z = TEXT_SIZE_M
        text.color = TEXT_COLOR
        markers += [box, text]
    return MarkerArray(markers=markers)


def _facing(camera_xy: tuple[float, float], xy: tuple[float, float]) -> Quaternion:
    """The rotation about z turning x towards `xy` as seen from `camera_xy`."""
    yaw = math.atan2(xy[1] - camera_xy[1], xy[0] - camera_xy[0])
    return Quaternion(z=math.sin(yaw / 2), w=math.cos(yaw / 2))
