"""The anomalous pixels as a point cloud, on ray-cast scenes (test/helpers/scenes.py): points
lie on the surfaces they were seen on, the budget is respected, the subsample is deterministic."""

import numpy as np
import pytest
from helpers.scenes import Box, Camera, render

from sleeg_core.projection.camera import CameraGeometry, GeometryError, Intrinsics, Pose
from sleeg_core.projection.points import anomaly_points

CAMERA = Camera(1000.0, 1000.0, 515.0, 250.0, 1024, 512, (1.7, 0.1, 1.5), (0.02, 0.06, 0.01))
BOX = Box.at(1.7 + 12.0, 0.5, 1.8, 4.0, 1.5)


def geometry(cam: Camera) -> CameraGeometry:
    return CameraGeometry(
        Intrinsics(cam.fx, cam.fy, cam.cx, cam.cy, cam.width, cam.height),
        Pose(cam.translation, cam.rpy),
    )


def outside(points: np.ndarray, box: Box) -> np.ndarray:
    """How far each point is outside the box (0 inside), in metres."""
    lo = np.array([box.x0, box.y0, 0.0])
    hi = np.array([box.x1, box.y1, box.top])
    return np.linalg.norm(np.maximum(lo - points, 0) + np.maximum(points - hi, 0), axis=1)


def test_depth_points_lie_on_the_box():
    mask, depth, _ = render(CAMERA, [BOX])
    points = anomaly_points(mask, geometry(CAMERA), depth, budget=5000)
    assert points.shape == (5000, 4) and points.dtype == np.float32
    assert outside(points[:, :3].astype(np.float64), BOX).max() < 1e-4  # float32 rounding
    assert np.isnan(points[:, 3]).all()  # no score map given


def test_ground_points_are_on_the_road_under_the_box():
    """Without depth each pixel is put on the ground: the box's bottom row lands at its near
    face, higher pixels farther along their rays, all at z = 0 and in front of the camera."""
    mask, _, _ = render(CAMERA, [BOX])
    points = anomaly_points(mask, geometry(CAMERA), None, budget=100_000)
    assert points.shape[0] == np.count_nonzero(mask)  # every box pixel is below the horizon
    assert (points[:, 2] == 0).all()
    nearest = float(points[:, 0].min())
    assert nearest == pytest.approx(BOX.x0, rel=0.01)


def test_missing_readings_fall_back_to_the_ground_and_sky_is_dropped():
    mask, depth, _ = render(CAMERA, [BOX])
    holes = depth.copy()
    holes[::2] = np.nan  # every other row has no reading
    sky = np.zeros_like(mask)
    sky[:40, :50] = 255  # above the horizon: no reading and no ground
    both = np.maximum(mask, sky)
    points = anomaly_points(both, geometry(CAMERA), holes, budget=1_000_000)
    assert points.shape[0] == np.count_nonzero(mask)  # the sky pixels are dropped
    on_box = outside(points[:, :3].astype(np.float64), BOX) < 1e-4
    on_ground = points[:, 2] == 0
    assert (on_box | on_ground).all()
    assert on_box.sum() >= np.count_nonzero(mask[1::2])  # the rows with readings


def test_budget_and_determinism():
    mask, depth, _ = render(CAMERA, [BOX])
    score = np.linspace(0, 1, mask.size, dtype=np.float32).reshape(mask.shape)
    cam = geometry(CAMERA)
    for budget in (1, 7, 1000):
        points = anomaly_points(mask, cam, depth, budget, score)
        assert points.shape == (budget, 4)
        np.testing.assert_array_equal(points, anomaly_points(mask, cam, depth, budget, score))
    assert anomaly_points(mask, cam, depth, 0).shape == (0, 4)
    everything = anomaly_points(mask, cam, depth, 10**9, score)
    assert everything.shape[0] == np.count_nonzero(mask)
    rows, cols = np.nonzero(mask)
    np.testing.assert_array_equal(everything[:, 3], score[rows, cols])
    # the subsample is spread over the whole region, not its first rows
    sample = anomaly_points(mask, cam, depth, 100, score)
    assert sample[:, 3].min() <= score[rows, cols].min() + 0.01
    assert sample[:, 3].max() >= score[rows, cols].max() - 0.01


def test_bad_inputs_are_a_geometry_error():
    mask, depth, _ = render(CAMERA, [BOX])
    cam = geometry(CAMERA)
    with pytest.raises(GeometryError, match="budget"):
        anomaly_points(mask, cam, depth, -1)
    with pytest.raises(GeometryError, match="budget"):
        anomaly_points(mask, cam, depth, 2.5)
    with pytest.raises(GeometryError, match="depth image"):
        anomaly_points(mask, cam, depth[::2, ::2], 10)
    with pytest.raises(GeometryError, match="mask"):
        anomaly_points(mask[::2], cam, None, 10)
    with pytest.raises(GeometryError, match="score map"):
        anomaly_points(mask, cam, None, 10, np.zeros((3, 3), np.float32))


def test_camera_below_the_ground_has_no_ground_points():
    mask, _, _ = render(CAMERA, [BOX])
    under = Camera(
        *[getattr(CAMERA, f) for f in ("fx", "fy", "cx", "cy", "width", "height")],
        (1.7, 0.1, -0.5),
        CAMERA.rpy,
    )
    assert anomaly_points(mask, geometry(under), None, 100).shape == (0, 4)


def test_an_empty_mask_gives_no_points():
    cam = geometry(CAMERA)
    empty = np.zeros((CAMERA.height, CAMERA.width), np.uint8)
    assert anomaly_points(empty, cam, None, 100).shape == (0, 4)
    assert anomaly_points(empty.astype(bool), cam, None, 100).shape == (0, 4)
