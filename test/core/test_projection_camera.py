"""Camera intrinsics and pose: validation of camera_info data and pose values, the REP 103 frame
conventions (checked against physical expectations and the tests' own camera model)."""

import math

import numpy as np
import pytest
from helpers.scenes import Camera, camera_to_output

from sleeg_core.projection.camera import CameraGeometry, GeometryError, Intrinsics, Pose

K = [1000.0, 0.0, 511.5, 0.0, 1000.0, 255.5, 0.0, 0.0, 1.0]


def test_from_k_reads_camera_info_k():
    intr = Intrinsics.from_k(K, 1024, 512)
    assert (intr.fx, intr.fy, intr.cx, intr.cy, intr.width, intr.height) == (
        1000.0,
        1000.0,
        511.5,
        255.5,
        1024,
        512,
    )


@pytest.mark.parametrize(
    ("k", "size", "cause"),
    [
        ([0.0] * 9, (1024, 512), "not calibrated"),
        ([math.nan, *K[1:]], (1024, 512), "finite"),
        ([*K[:4], math.inf, *K[5:]], (1024, 512), "finite"),
        (K[:8], (1024, 512), "9 values"),
        ([*K[:1], 3.0, *K[2:]], (1024, 512), "pinhole"),
        ([*K[:8], 0.0], (1024, 512), "pinhole"),
        ([-1000.0, *K[1:]], (1024, 512), "positive"),
        (K, (-1024, 512), "positive"),
        (K, (1024, 0), "positive"),
        ("not numbers", (1024, 512), "numbers"),
    ],
)
def test_bad_camera_data_is_a_geometry_error(k, size, cause):
    with pytest.raises(GeometryError, match=cause):
        Intrinsics.from_k(k, *size)


def test_intrinsics_are_checked_when_built_directly():
    with pytest.raises(GeometryError, match="positive"):
        Intrinsics(1000.0, 0.0, 10.0, 10.0, 20, 20)
    with pytest.raises(GeometryError, match="finite"):
        Intrinsics(1000.0, 1000.0, math.nan, 10.0, 20, 20)


def test_scaled_to_keeps_the_field_of_view():
    full = Intrinsics.from_k(K, 1024, 512)
    half = full.scaled_to(512, 256)
    assert (half.width, half.height, half.fx, half.fy) == (512, 256, 500.0, 500.0)
    # the half-size pixel (0, 0) covers full-size pixels 0..1 in each direction: its centre is
    # the full-size point (0.5, 0.5); both see it along the same ray
    np.testing.assert_allclose(half.rays(0.0, 0.0), full.rays(0.5, 0.5))
    # and the image corners (pixel edges) keep their rays
    np.testing.assert_allclose(half.rays(511.5, 255.5), full.rays(1023.5, 511.5))
    np.testing.assert_allclose(half.scaled_to(1024, 512).rays(3.0, 7.0), full.rays(3.0, 7.0))
    with pytest.raises(GeometryError, match="positive"):
        full.scaled_to(0, 256)


@pytest.mark.parametrize(
    ("values", "cause"),
    [
        ([0.0, 0.0, 1.4, 0.0, 0.0], "6 values"),
        ([0.0] * 7, "6 values"),
        ([0.0, 0.0, math.nan, 0.0, 0.0, 0.0], "finite"),
        ([0.0, 0.0, 1.4, 0.0, math.inf, 0.0], "finite"),
        (["a", 0, 0, 0, 0, 0], "numbers"),
        (None, "numbers"),
    ],
)
def test_bad_pose_values_are_a_geometry_error(values, cause):
    with pytest.raises(GeometryError, match=cause):
        Pose.from_values(values)


def test_pose_from_values():
    pose = Pose.from_values([1.5, 0.1, 1.4, 0.01, 0.05, -0.02])
    assert pose.translation == (1.5, 0.1, 1.4)
    assert pose.rpy == (0.01, 0.05, -0.02)
    with pytest.raises(GeometryError, match="finite"):
        Pose((0.0, 0.0, math.nan), (0.0, 0.0, 0.0))


def test_level_camera_optical_axes_in_the_body_frame():
    rotation, t = Pose((1.0, 2.0, 1.5), (0.0, 0.0, 0.0)).optical_to_output()
    np.testing.assert_allclose(rotation @ [0, 0, 1], [1, 0, 0], atol=1e-12)  # z forward → x
    np.testing.assert_allclose(rotation @ [1, 0, 0], [0, -1, 0], atol=1e-12)  # x right → -y
    np.testing.assert_allclose(rotation @ [0, 1, 0], [0, 0, -1], atol=1e-12)  # y down → -z
    np.testing.assert_allclose(t, [1.0, 2.0, 1.5])


def test_pose_angles_mean_what_the_documentation_says():
    def axis(rpy, optical):
        return Pose((0.0, 0.0, 1.0), rpy).optical_to_output()[0] @ optical

    forward, right = [0, 0, 1], [1, 0, 0]
    pitched = axis((0.0, 0.1, 0.0), forward)
    assert pitched[2] < 0 and pitched[0] > 0  # positive pitch looks down at the road
    np.testing.assert_allclose(pitched, [math.cos(0.1), 0, -math.sin(0.1)], atol=1e-12)
    yawed = axis((0.0, 0.0, 0.2), forward)
    assert yawed[1] > 0  # positive yaw looks left
    rolled = axis((0.1, 0.0, 0.0), right)
    assert rolled[2] < 0  # positive roll: the right side goes down (left side up)


@pytest.mark.parametrize("rpy", [(0.02, 0.06, -0.01), (-0.3, 0.4, 2.0), (1.0, -0.5, -3.0)])
def test_optical_to_output_matches_an_independent_model(rpy):
    rotation, _ = Pose((0.0, 0.0, 0.0), rpy).optical_to_output()
    np.testing.assert_allclose(rotation, camera_to_output(rpy), atol=1e-12)
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(rotation) == pytest.approx(1.0)


def test_a_projected_point_is_back_on_its_ray():
    cam = Camera(1000.0, 990.0, 500.0, 260.0, 1024, 512, (1.5, 0.2, 1.4), (0.02, 0.06, 0.03))
    geometry = CameraGeometry(
        Intrinsics(cam.fx, cam.fy, cam.cx, cam.cy, cam.width, cam.height),
        Pose(cam.translation, cam.rpy),
    )
    point = np.array([[20.0, -3.0, 0.5]])
    u, v = cam.project(point)[0]
    rotation, t = geometry.pose.optical_to_output()
    ray = rotation @ geometry.intrinsics.rays(u, v)[0]
    along = (point[0] - t) / ray
    np.testing.assert_allclose(along, along[0], rtol=1e-9)  # point - t is a multiple of the ray
    assert along[0] > 0
