"""The node's metric outputs over real DDS (loopback, a domain of this module's own): obstacles in
metres, anomaly/points and anomaly/markers from camera_info, camera_pose and an aligned depth
image sent by this process; bad geometry input loses no output and is reported once per cause.

One node for the module (the tiny model, every pixel anomalous: one obstacle, the whole frame);
each test starts from a new activation (deactivate, activate), so each cause is logged afresh.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy not installed: run scripts/setup")
from diagnostic_msgs.msg import DiagnosticStatus
from helpers.camera_msgs import camera_info, cloud_points, depth_image
from helpers.node import FRAME, log_lines, node_params, stop
from helpers.ros_probe import RELIABLE, Probe, start_node
from sensor_msgs.msg import CameraInfo, Image
from visualization_msgs.msg import Marker, MarkerArray

from sleeg_ros.camera_geometry import CAUSES
from sleeg_ros.msg import AnomalyObstacle

H, W = FRAME.shape[:2]
DEPTH_M = 8.0  # every pixel's depth reading (along the optical axis)
HEIGHT_M = 1.5  # the camera above the ground of base_link, looking straight ahead
BUDGET = 500
PARAMS = (
    "threshold:=-1000000000.0",  # every pixel anomalous: one obstacle, the whole frame
    "mask_open_px:=0",
    f"camera_pose:=[0.0, 0.0, {HEIGHT_M}, 0.0, 0.0, 0.0]",
    "use_depth:=true",
    "publish_points:=true",
    f"points_budget:={BUDGET}",
    "markers_lifetime_s:=0.25",
)
REMAPS = ("camera_info:=/cam/camera_info", "depth:=/cam/depth")
OUTPUTS = ("/diagnostics", "anomaly/obstacles", "anomaly/markers", "anomaly/points")
GOOD_DEPTH = np.full((H, W), DEPTH_M * 1000, np.uint16)  # 16UC1 millimetres


@pytest.fixture(scope="module")
def node(ros_env, tiny_model):
    """The node process, its log lines, and the probe with camera_info and depth publishers."""
    domain_id = 10 + (os.getpid() + 65) % 90
    env = {**ros_env, "ROS_DOMAIN_ID": str(domain_id)}
    proc = start_node(env, *node_params(tiny_model, *PARAMS), remaps=REMAPS)
    lines = log_lines(proc)
    probe = Probe(outputs=OUTPUTS, domain_id=domain_id)
    probe.info_pub = probe.node.create_publisher(CameraInfo, "/cam/camera_info", RELIABLE)
    probe.depth_pub = probe.node.create_publisher(Image, "/cam/depth", RELIABLE)
    try:
        probe.wait_for_node()
        yield proc, lines, probe
    finally:
        probe.close()
        rc, out = stop(proc)
    assert rc == 0, "".join(lines) + out


@pytest.fixture
def fresh(node):
    """The node deactivated and activated again (no cause logged yet in this activation): its
    log lines from now on, and the probe."""
    _, lines, probe = node
    assert probe.change_state("deactivate") and probe.change_state("activate")
    probe.wait_for_node()
    assert probe.info_pub.get_subscription_count() and probe.depth_pub.get_subscription_count()
    probe.got.clear()
    start = len(lines)
    return lambda: lines[start:], probe


def send(
    probe: Probe,
    sec: int,
    info: CameraInfo | None = None,
    depth: Image | None = None,
    method: int | None = None,
    timeout: float = 60.0,
) -> AnomalyObstacle:
    """Publish camera_info and depth (when given), then the frame stamped `sec`, every second
    until its obstacle arrives (with `method`, when given); that obstacle."""

    def arrived() -> list[AnomalyObstacle]:
        got = [o for msg in probe.stamped("anomaly/obstacles", sec) for o in msg.obstacles]
        return [o for o in got if method is None or o.method == method]

    image = probe.image(FRAME, (sec, 0))
    for _ in range(round(timeout)):
        if info is not None:
            probe.info_pub.publish(info)
        if depth is not None:
            probe.depth_pub.publish(depth)
        probe.spin(0.1)  # the inputs are kept before the frame comes
        probe.image_pub.publish(image)
        if probe.wait_for(lambda: bool(arrived()), 1.0):
            return arrived()[0]
    raise AssertionError(f"no obstacle for frame {sec} (method {method})")


def markers_at(probe: Probe, sec: int) -> list[MarkerArray]:
    """The marker arrays received for the frame stamped `sec` (each marker has its header)."""
    got = probe.got["anomaly/markers"]
    return [m for m in got if m.markers and m.markers[0].header.stamp.sec == sec]


def metres(o: AnomalyObstacle) -> list[float]:
    return [o.contact.x, o.contact.y, o.contact.z, o.distance, o.width, o.height]


def warnings(lines: Callable[[], list[str]], cause: str) -> list[str]:
    """The node's warnings naming `cause` (the /diagnostics level-change lines left out)."""
    return [line for line in lines() if CAUSES[cause] in line and "/diagnostics" not in line]


def geometry_status(probe: Probe) -> tuple[bytes, str]:
    """The next status's level and geometry value."""
    status = probe.next_status()
    return status.level, {kv.key: kv.value for kv in status.values}.get("geometry", "")


def test_camera_info_never_arriving_leaves_obstacles_in_pixels(node):
    """First in the module: the node has not had a camera_info yet."""
    _, log, probe = node
    lines = lambda: log  # noqa: E731
    for sec in (1, 2, 3):
        o = send(probe, sec, depth=depth_image((sec, 0), GOOD_DEPTH, "16UC1"))
        assert o.method == AnomalyObstacle.METHOD_NONE and o.roi.width == W
        assert all(math.isnan(v) for v in metres(o))
        arrived = lambda s=sec: probe.stamped("anomaly/points", s) and markers_at(probe, s)  # noqa: E731
        assert probe.wait_for(arrived, 10)
        assert probe.stamped("anomaly/points", sec)[0].width == 0  # nothing located
        markers = markers_at(probe, sec)[0].markers
        assert [m.action for m in markers] == [Marker.DELETEALL]  # no box
    level, geometry = geometry_status(probe)
    assert level == DiagnosticStatus.WARN and geometry == "no_camera_info"
    assert len(warnings(lines, "no_camera_info")) == 1, "".join(log)
    info = camera_info((4, 0), W, H)
    o = send(probe, 4, info, depth_image((4, 0), GOOD_DEPTH, "16UC1"), AnomalyObstacle.METHOD_DEPTH)
    assert o.distance == pytest.approx(DEPTH_M, rel=0.05)


def test_good_geometry_gives_metres_markers_and_points(fresh):
    """camera_info at twice the frame's size (a uniform scale) and depth at half its size."""
    _, probe = fresh
    sec = 10
    info = camera_info((sec, 0), 2 * W, 2 * H)
    half = GOOD_DEPTH[::2, ::2].astype(np.float32) / 1000  # 32FC1 metres
    o = send(probe, sec, info, depth_image((sec, 0), half, "32FC1"), AnomalyObstacle.METHOD_DEPTH)
    assert all(math.isfinite(v) for v in metres(o))
    assert o.distance == pytest.approx(DEPTH_M, rel=0.05) and o.contact.x > 0
    assert o.width > 0 and o.height > 0
    array = probe.stamped("anomaly/obstacles", sec)[0]
    assert array.output_frame == "base_link" and array.header.frame_id == "cam_front"

    assert probe.wait_for(
        lambda: markers_at(probe, sec) and probe.stamped("anomaly/points", sec), 10
    )
    for msg in (markers_at(probe, sec)[0].markers[0],
                probe.stamped("anomaly/points", sec)[0]):  # fmt: skip
        assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (sec, 0)
        assert msg.header.frame_id == "base_link"
    markers = markers_at(probe, sec)[0].markers
    assert [m.type if m.action == Marker.ADD else "clear" for m in markers] == [
        "clear", Marker.CUBE, Marker.TEXT_VIEW_FACING
    ]  # fmt: skip
    box, text = markers[1:]
    assert box.scale.z == pytest.approx(o.height) and box.scale.y == pytest.approx(o.width)
    assert box.lifetime.nanosec == 250_000_000 and f"{o.distance:.1f} m" in text.text

    cloud = probe.stamped("anomaly/points", sec)[0]
    assert [f.name for f in cloud.fields] == ["x", "y", "z", "score"]
    points = cloud_points(cloud)
    assert 0 < len(points) <= BUDGET and np.isfinite(points).all()
    assert points[:, 0] == pytest.approx(DEPTH_M, rel=0.01)  # x forward = the optical depth
    level, geometry = geometry_status(probe)
    assert level == DiagnosticStatus.OK and geometry == "ok"


K_ZEROS = [0.0] * 9
K_NAN = [math.nan, 0.0, 80.0, 0.0, math.nan, 48.0, 0.0, 0.0, 1.0]


@pytest.mark.parametrize(
    ("cause", "bad_info"),
    [
        ("bad_camera_info", lambda s: camera_info(s, W, H, K_ZEROS)),
        ("bad_camera_info", lambda s: camera_info(s, W, H, K_NAN)),
        ("camera_info_size", lambda s: camera_info(s, 2 * W, H)),  # not a uniform scale
    ],
    ids=["zeros", "nan", "size"],
)
def test_bad_camera_info_loses_no_obstacle(fresh, cause, bad_info):
    lines, probe = fresh
    depth = lambda s: depth_image(s, GOOD_DEPTH, "16UC1")  # noqa: E731
    for sec in (20, 21, 22):
        o = send(probe, sec, bad_info((sec, 0)), depth((sec, 0)), AnomalyObstacle.METHOD_NONE)
        assert all(math.isnan(v) for v in metres(o)) and o.pixel_area == H * W
    level, geometry = geometry_status(probe)
    assert level == DiagnosticStatus.WARN and geometry == cause
    assert len(warnings(lines, cause)) == 1, "".join(lines)
    good = camera_info((23, 0), W, H)
    o = send(probe, 23, good, depth((23, 0)), AnomalyObstacle.METHOD_DEPTH)
    assert o.distance == pytest.approx(DEPTH_M, rel=0.05)


@pytest.mark.parametrize(
    ("cause", "bad_depth"),
    [
        ("depth_size", lambda s: depth_image(s, GOOD_DEPTH[:, : W // 3], "16UC1")),
        ("bad_depth", lambda s: depth_image(s, np.zeros((H, W, 3), np.uint8), "rgb8")),
        ("depth_stamp", lambda s: depth_image((s[0] + 100, 0), GOOD_DEPTH, "16UC1")),
    ],
    ids=["size", "encoding", "stamp"],
)
def test_bad_depth_falls_back_to_the_ground(fresh, cause, bad_depth):
    """Without usable depth the obstacle is still located, by the flat-ground model."""
    lines, probe = fresh
    info = lambda s: camera_info(s, W, H)  # noqa: E731
    for sec in (30, 31, 32):
        o = send(probe, sec, info((sec, 0)), bad_depth((sec, 0)), AnomalyObstacle.METHOD_GROUND)
        assert all(math.isfinite(v) for v in metres(o))
        assert o.contact.z == pytest.approx(0.0, abs=1e-6) and o.distance > 0
    level, geometry = geometry_status(probe)
    assert level == DiagnosticStatus.WARN and geometry == cause
    assert len(warnings(lines, cause)) == 1, "".join(lines)
    good = depth_image((33, 0), GOOD_DEPTH, "16UC1")
    o = send(probe, 33, info((33, 0)), good, AnomalyObstacle.METHOD_DEPTH)
    assert o.distance == pytest.approx(DEPTH_M, rel=0.05)
