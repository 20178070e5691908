"""The node's camera geometry glue and its metric messages, in process: which camera_info, depth
image and pose a frame gets and why not (the causes), the obstacles / points / markers messages,
the launch arguments for them and the shipped RViz view."""

from __future__ import annotations

import math

import numpy as np
import pytest
import yaml
from helpers.camera_msgs import camera_info, cloud_points, depth_image
from helpers.paths import REPO
from std_msgs.msg import Header
from visualization_msgs.msg import Marker

from sleeg_core.eval.obstacles import Obstacle
from sleeg_core.projection.camera import Intrinsics, Pose
from sleeg_core.projection.locate import Location
from sleeg_ros.camera_geometry import (
    CameraInputs,
    ParameterPoses,
    UnusableInputError,
    depth_for,
    frame_geometry,
    intrinsics_for,
)
from sleeg_ros.cameras import launch_geometry, launch_pose
from sleeg_ros.metric_msgs import obstacle_array, obstacle_markers, point_cloud
from sleeg_ros.msg import AnomalyObstacle
from sleeg_ros.outputs import OUTPUTS
from sleeg_ros.parameters import StartupError

H, W = 96, 160
SIZE = (H, W)
DEPTH = np.full(SIZE, 8000, np.uint16)  # 8 m in millimetres


def cause_of(call) -> str:
    with pytest.raises(UnusableInputError) as err:
        call()
    return err.value.cause


@pytest.mark.parametrize(
    ("info", "cause"),
    [
        (None, "no_camera_info"),
        (camera_info((0, 0), W, H, [0.0] * 9), "bad_camera_info"),
        (camera_info((0, 0), W, H, [math.nan, 0, 80, 0, 100, 48, 0, 0, 1]), "bad_camera_info"),
        (camera_info((0, 0), 0, 0), "bad_camera_info"),
        (camera_info((0, 0), W, 2 * H), "camera_info_size"),
        (camera_info((0, 0), W + 7, H), "camera_info_size"),
    ],
)
def test_unusable_camera_info_is_named_by_its_cause(info, cause):
    assert cause_of(lambda: intrinsics_for(info, SIZE)) == cause


def test_camera_info_of_a_uniform_scale_is_rescaled_to_the_frame():
    info = camera_info((0, 0), 2 * W, 2 * H)
    own = Intrinsics.from_k(list(info.k), 2 * W, 2 * H)
    scaled = intrinsics_for(info, SIZE)
    assert (scaled.width, scaled.height) == (W, H)
    assert scaled == own.scaled_to(W, H) and scaled.fx == pytest.approx(own.fx / 2)
    exact = camera_info((0, 0), W, H)
    assert intrinsics_for(exact, SIZE) == Intrinsics.from_k(list(exact.k), W, H)


@pytest.mark.parametrize(
    ("depths", "cause"),
    [
        ([], "no_depth"),
        ([depth_image((0, 100_000_000), DEPTH, "16UC1")], "depth_stamp"),  # 0.1 s away
        ([depth_image((0, 0), DEPTH[:, :100], "16UC1")], "depth_size"),
        ([depth_image((0, 0), np.zeros((H, W, 3), np.uint8), "rgb8")], "bad_depth"),
        ([depth_image((0, 0), DEPTH, "mono16")], "bad_depth"),  # not a depth encoding
    ],
)
def test_unusable_depth_is_named_by_its_cause(depths, cause):
    assert cause_of(lambda: depth_for(depths, 0, SIZE, 0.05)) == cause


def test_truncated_depth_data_is_unusable():
    msg = depth_image((0, 0), DEPTH, "16UC1")
    msg.data = bytes(msg.data)[:-2]
    assert cause_of(lambda: depth_for([msg], 0, SIZE, 0.05)) == "bad_depth"


def test_depth_nearest_in_stamp_in_metres_at_the_frame_size():
    far = depth_image((0, 40_000_000), DEPTH // 2, "16UC1")  # 4 m, 0.04 s away
    near = depth_image((0, 10_000_000), DEPTH[::2, ::2].astype(np.float32) / 1000, "32FC1")
    got = depth_for([far, near], 0, SIZE, 0.05)
    assert got.shape == SIZE and got.dtype == np.float32
    np.testing.assert_allclose(got, 8.0)
    swapped = depth_image((0, 0), DEPTH.byteswap(), "16UC1")
    swapped.is_bigendian = 1
    np.testing.assert_allclose(depth_for([swapped], 0, SIZE, 0.05), 8.0)
    holes = DEPTH.copy()
    holes[:10] = 0  # no reading
    got = depth_for([depth_image((0, 0), holes, "16UC1")], 0, SIZE, 0.05)
    assert np.isnan(got[:10]).all() and np.isfinite(got[10:]).all()


def test_frame_geometry_names_everything_missing_and_keeps_what_it_has():
    inputs = CameraInputs()
    geo = frame_geometry(inputs, None, 0, SIZE, 0.05)
    assert geo.camera is None and geo.depth_m is None
    assert set(geo.issues) == {"no_camera_info", "no_camera_pose", "no_depth"}
    inputs.on_info(camera_info((0, 0), W, H))
    inputs.on_depth(depth_image((0, 0), DEPTH, "16UC1"))
    pose = Pose.from_values([0, 0, 1.5, 0, 0, 0])
    geo = frame_geometry(inputs, pose, 0, SIZE, 0.05)
    assert geo.issues == {} and geo.camera.pose == pose and geo.depth_m.shape == SIZE
    assert frame_geometry(inputs, pose, 0, SIZE, None).depth_m is None  # use_depth off
    inputs.forget_depth()
    assert set(frame_geometry(inputs, pose, 0, SIZE, 0.05).issues) == {"no_depth"}


def test_poses_from_parameters_per_camera_or_the_nodes():
    values = {"camera_pose": [0, 0, 1.5, 0, 0.1, 0], "front.camera_pose": [], "rear.camera_pose": [
        -1.0, 0, 1.2, 0, 0, math.pi]}  # fmt: skip
    param = values.__getitem__
    poses = ParameterPoses.from_params(
        [("front", "camera_pose"), ("rear", "rear.camera_pose")], param
    )
    assert poses.pose("front", 0) == Pose.from_values(values["camera_pose"])
    assert poses.pose("rear", 0).translation == (-1.0, 0.0, 1.2)
    assert ParameterPoses.from_params([("", "front.camera_pose")], param).pose("", 0) is None
    bad = {"camera_pose": [0, 0, 1.5, 0, 0], "c.camera_pose": [0, 0, math.nan, 0, 0, 0]}
    for key in bad:
        with pytest.raises(StartupError, match=f"parameter '{key}': camera pose"):
            ParameterPoses.from_params([("", key)], bad.__getitem__)


def obstacle(x: int = 10, score: float = 2.5) -> Obstacle:
    return Obstacle(x, 20, 30, 40, 1000, score, score + 1, x + 15.0, 40.0)


def test_obstacles_carry_their_location_and_the_frame_of_its_metres():
    header = Header(frame_id="cam")
    header.stamp.sec = 5
    mask = np.zeros(SIZE, np.uint8)
    mask[:24] = 255
    located = Location(6.0, -0.5, 0.0, 6.02, 0.8, 1.1, "depth")
    msg = obstacle_array(
        header, 1.5, mask, [obstacle(), obstacle(50)], [located, Location.unknown()], "odom"
    )
    assert msg.output_frame == "odom" and msg.header.frame_id == "cam"
    assert msg.anomalous_fraction == pytest.approx(0.25)
    first, second = msg.obstacles
    assert first.method == AnomalyObstacle.METHOD_DEPTH and first.roi.x_offset == 10
    assert (first.contact.x, first.contact.y, first.distance) == pytest.approx((6.0, -0.5, 6.02))
    assert second.method == AnomalyObstacle.METHOD_NONE
    assert all(math.isnan(v) for v in (second.contact.z, second.distance, second.width))
    with pytest.raises(ValueError):  # one location per obstacle
        obstacle_array(header, 1.5, mask, [obstacle()], [], "odom")


def test_markers_clear_the_old_ones_and_box_each_located_obstacle():
    header = Header(frame_id="base_link")
    header.stamp.sec = 9
    locations = [Location(10.0, 2.0, 0.0, 9.9, 1.2, 0.8, "ground"), Location.unknown(),
                 Location(5.0, -1.0, 0.0, 5.1, 0.5, 0.4, "depth")]  # fmt: skip
    obstacles = [obstacle(), obstacle(60), obstacle(100, 3.25)]
    msg = obstacle_markers(header, "front", obstacles, locations, (0.1, 0.0), 0.25)
    clear, *markers = msg.markers
    assert clear.action == Marker.DELETEALL and clear.header.stamp.sec == 9
    assert [(m.id, m.type) for m in markers] == [
        (0, Marker.CUBE), (1, Marker.TEXT_VIEW_FACING),
        (4, Marker.CUBE), (5, Marker.TEXT_VIEW_FACING),
    ]  # fmt: skip
    box, text = markers[2:]
    assert (box.scale.y, box.scale.z) == pytest.approx((0.5, 0.4))
    assert box.pose.position.z == pytest.approx(0.2)  # the box stands on its contact point
    assert text.text == "3.25 @ 5.1 m" and text.pose.position.z > box.scale.z
    assert {m.ns for m in msg.markers} == {"front"} and all(
        m.header.frame_id == "base_link" for m in markers
    )
    assert (box.lifetime.sec, box.lifetime.nanosec) == (0, 250_000_000)
    yaw = 2 * math.atan2(box.pose.orientation.z, box.pose.orientation.w)
    assert yaw == pytest.approx(math.atan2(-1.0, 4.9))  # facing away from the camera at (0.1, 0)


def test_point_cloud_holds_x_y_z_score_as_given():
    points = np.random.default_rng(0).normal(size=(37, 4)).astype(np.float32)
    header = Header(frame_id="base_link")
    msg = point_cloud(header, points)
    assert [f.name for f in msg.fields] == ["x", "y", "z", "score"] and msg.is_dense
    np.testing.assert_array_equal(cloud_points(msg), points)
    empty = point_cloud(header, np.zeros((0, 4), np.float32))
    assert empty.width == 0 and cloud_points(empty).shape == (0, 4)


def test_launch_arguments_for_the_geometry():
    assert launch_geometry([], ["/camera/image_raw"], "", "") == [
        ("camera_info", "/camera/camera_info")
    ]
    assert launch_geometry([], ["/camera/image_raw"], "/calib/info", "/camera/depth") == [
        ("camera_info", "/calib/info"), ("depth", "/camera/depth")
    ]  # fmt: skip
    assert launch_geometry(["front", "left"], ["/f/image", "/l/image"], "", "/f/d,/l/d") == [
        ("front/camera_info", "/f/camera_info"), ("left/camera_info", "/l/camera_info"),
        ("front/depth", "/f/d"), ("left/depth", "/l/d"),
    ]  # fmt: skip
    assert launch_geometry(["front"], [], "", "") == []  # beside front/image, as the node names it
    with pytest.raises(ValueError, match="'depth_topics': 1 topic"):
        launch_geometry(["front", "left"], [], "", "/f/d")
    with pytest.raises(ValueError, match="'camera_info_topic': for the single camera only"):
        launch_geometry(["front"], [], "/x", "")
    assert launch_pose("1, 2, 3, 0, 0.5, -1") == [1.0, 2.0, 3.0, 0.0, 0.5, -1.0]
    for bad in ("[1, 2, 3]", "[1, 2, 3, 4, 5, x]"):
        with pytest.raises(ValueError, match="launch argument 'camera_pose'"):
            launch_pose(bad)


def test_the_rviz_view_shows_the_overlay_markers_and_points_in_base_link():
    view = yaml.safe_load((REPO / "config" / "sleeg.rviz").read_text())["Visualization Manager"]
    assert view["Global Options"]["Fixed Frame"] == "base_link"
    topics = {
        d["Class"].split("/")[-1]: d["Topic"]["Value"] for d in view["Displays"] if "Topic" in d
    }
    table = {o.name: "/" + o.topic for o in OUTPUTS}
    assert topics == {
        "Image": table["overlay"], "MarkerArray": table["markers"], "PointCloud2": table["points"]
    }  # fmt: skip
