"""Obstacle locations in metres, measured on synthetic scenes: boxes standing on a flat road,
rendered by ray casting (test/helpers/scenes.py, its own camera model) with a pitched, rolled and
yawed camera 1.5 m above the ground, at 1024×512 (fx = fy = 1000 px, 54° wide) and the same
camera at 2048×1024; then found by find_obstacles and located.

What pixel quantisation implies for the ground path: the region's bottom edge is known to half a
pixel row, and one row at range d spans d²/(h·fy) metres (h: mounting height). At 50 m that is
1.67 m at 1024×512, so ±0.83 m = ±1.7 %; ±0.8 % at 2048×1024; at 5 m it is ±0.02 %/±0.01 %.
"""

import math

import cv2
import numpy as np
import pytest
from helpers.scenes import Box, Camera, render

from sleeg_core.eval.obstacles import find_obstacles
from sleeg_core.projection.camera import CameraGeometry, GeometryError, Intrinsics, Pose
from sleeg_core.projection.locate import (
    align_depth,
    decode_depth,
    locate_obstacles,
)

CAMERA = Camera(1000.0, 1000.0, 515.0, 250.0, 1024, 512, (1.7, 0.1, 1.5), (0.02, 0.06, 0.01))
SCALES = {"1024x512": 1.0, "2048x1024": 2.0}
DISTANCES = (5.0, 10.0, 20.0, 35.0, 50.0)
LATERAL = (0.0, 2.0, -2.5)  # metres left of the camera
# (width across, depth along, height) in metres: an upright board and a car-sized box
SHAPES = {"board": (0.8, 0.1, 0.6), "car": (1.8, 4.0, 1.5)}


def geometry(cam: Camera) -> CameraGeometry:
    return CameraGeometry(
        Intrinsics(cam.fx, cam.fy, cam.cx, cam.cy, cam.width, cam.height),
        Pose(cam.translation, cam.rpy),
    )


def box_ahead(cam: Camera, distance: float, lateral: float, shape: str) -> Box:
    """A box whose near face is `distance` ahead of the camera, `lateral` left of it."""
    width, depth, top = SHAPES[shape]
    x, y, _ = cam.translation
    return Box.at(x + distance, y + lateral, width, depth, top)


def locate_scene(cam: Camera, boxes: list[Box], depth: np.ndarray | None = None):
    mask, _, _ = render(cam, boxes)
    mask, obstacles = find_obstacles(mask.astype(np.float32), threshold=128)
    return obstacles, locate_obstacles(mask, obstacles, geometry(cam), depth)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("lateral", LATERAL)
@pytest.mark.parametrize("distance", DISTANCES)
@pytest.mark.parametrize("size", SCALES)
def test_ground_path_distance_within_2_percent(size, distance, lateral, shape):
    cam = CAMERA.scaled(SCALES[size])
    box = box_ahead(cam, distance, lateral, shape)
    _, (loc,) = locate_scene(cam, [box])
    truth = box.nearest(*cam.translation[:2])  # to the nearest point of the footprint
    assert loc.method == "ground"
    assert loc.distance == pytest.approx(truth, rel=0.02)
    assert loc.z == 0.0
    # the contact point is at the footprint, up to the range's 2 % and the spread of the near
    # face's ranges across the line of sight (its width × sin(bearing); the contact is on the
    # line of sight to the region's middle, at the range of its near side)
    bearing = math.atan2(abs(lateral), distance)
    slack = 0.02 * distance + (box.y1 - box.y0) * math.sin(bearing)
    assert box.nearest(loc.x, loc.y) <= slack
    camera_xy = np.array(cam.translation[:2])
    assert math.hypot(*(np.array([loc.x, loc.y]) - camera_xy)) == pytest.approx(loc.distance)


@pytest.mark.parametrize("distance", DISTANCES)
@pytest.mark.parametrize("size", SCALES)
def test_size_of_an_upright_board(size, distance):
    """Width and height of a thin board facing the camera: within 3 % plus 1.5 pixels' footprint
    at that range (the outer pixel edges are known to half a pixel on each side; the board's top
    face, seen from above, adds up to depth·(h - top)/d)."""
    cam = CAMERA.scaled(SCALES[size])
    width, _, top = SHAPES["board"]
    box = box_ahead(cam, distance, 0.0, "board")
    _, (loc,) = locate_scene(cam, [box])
    pixel = distance / cam.fx
    assert loc.width == pytest.approx(width, abs=0.03 * width + 1.5 * pixel)
    assert loc.height == pytest.approx(top, abs=0.03 * top + 1.5 * pixel)


@pytest.mark.parametrize("lateral", (2.0, -2.5))
@pytest.mark.parametrize("size", SCALES)
def test_size_of_a_deep_box_seen_obliquely_includes_its_side(size, lateral):
    """A car-sized box 20 m ahead, off to the side: its silhouette includes the visible side
    face, so the width lies between the front face's and the front plus the side's extent
    across the line of sight."""
    cam = CAMERA.scaled(SCALES[size])
    width, depth, top = SHAPES["car"]
    box = box_ahead(cam, 20.0, lateral, "car")
    _, (loc,) = locate_scene(cam, [box])
    bearing = math.atan2(abs(lateral), 20.0 + depth / 2)
    pixel = 20.0 / cam.fx
    assert width * math.cos(bearing) - 2 * pixel < loc.width
    assert loc.width < width + depth * math.sin(bearing) + 0.05 * width
    assert loc.height == pytest.approx(top, abs=0.03 * top + 1.5 * pixel)


def depth_bound(cam: Camera, box: Box, obstacle_height_px: int) -> float:
    """What the depth path may differ from the near face's true range by, with exact readings:
    the range is taken along the line of sight to the region's middle column, which may be off
    the face's normal by one pixel plus the roll's slant over half the region's height; across
    half the box's width that tilts the ranges by up to half-width × tilt."""
    tilt = (1 + abs(cam.rpy[0]) * obstacle_height_px / 2) / cam.fx
    return (box.y1 - box.y0) / 2 * tilt


def millimetres(depth: np.ndarray) -> np.ndarray:
    """A 16UC1 depth image (rounded to the millimetre; 0 = no reading) of metres."""
    mm = np.round(np.nan_to_num(depth, nan=0.0) * 1000)
    return np.where(mm <= 65535, mm, 0).astype(np.uint16)  # beyond 65.535 m: no reading


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("distance", DISTANCES)
@pytest.mark.parametrize("size", SCALES)
def test_depth_path_is_exact_to_its_quantisation(size, distance, shape):
    """Straight ahead: 32FC1 readings give the near face's range to within the line-of-sight
    bound (sub-millimetre for the board); 16UC1 millimetres add at most 0.5 mm of rounding."""
    cam = CAMERA.scaled(SCALES[size])
    box = box_ahead(cam, distance, 0.0, shape)
    _, depth, _ = render(cam, [box])
    truth = box.x0 - cam.translation[0]
    obstacles, (metres,) = locate_scene(cam, [box], decode_depth(depth, "32FC1"))
    _, (mm,) = locate_scene(cam, [box], decode_depth(millimetres(depth), "16UC1"))
    bound = depth_bound(cam, box, obstacles[0].height) + 1e-6
    assert metres.method == mm.method == "depth"
    assert abs(metres.distance - truth) <= bound
    assert abs(mm.distance - truth) <= bound + 0.5e-3
    assert metres.width == pytest.approx(box.y1 - box.y0, abs=0.03 + 1.5 * distance / cam.fx)


@pytest.mark.parametrize("lateral", (2.0, -2.5))
@pytest.mark.parametrize("distance", DISTANCES)
def test_depth_path_off_to_the_side(distance, lateral):
    """An oblique near face: the range along the line of sight of its 10th-percentile point,
    within 1 % of the nearest footprint point (measured ≤ 0.8 % at 5 m, the most oblique)."""
    cam = CAMERA
    box = box_ahead(cam, distance, lateral, "car")
    _, depth, _ = render(cam, [box])
    _, (loc,) = locate_scene(cam, [box], depth)
    assert loc.method == "depth"
    assert loc.distance == pytest.approx(box.nearest(*cam.translation[:2]), rel=0.01)


def test_depth_of_another_size_is_aligned_then_used():
    """Depth rendered at half the image size, aligned by nearest neighbour: each pixel takes a
    reading of the same face, so the range stays within 0.2 % (10 and 35 m)."""
    cam = CAMERA
    for distance in (10.0, 35.0):
        box = box_ahead(cam, distance, 0.0, "car")
        _, small, _ = render(cam.scaled(0.5), [box])
        aligned = align_depth(small, cam.height, cam.width)
        assert aligned.shape == (cam.height, cam.width)
        _, (loc,) = locate_scene(cam, [box], aligned)
        assert loc.method == "depth"
        assert loc.distance == pytest.approx(distance, rel=0.002)


def test_depth_path_ignores_a_mask_that_bleeds_onto_the_road():
    """A mask 2 px wider than the object (segmentation bleed) takes in road readings nearer
    and farther than the object; the low percentile keeps to the object's face."""
    cam = CAMERA
    box = box_ahead(cam, 20.0, 0.0, "car")
    mask, depth, _ = render(cam, [box])
    mask = cv2.dilate(mask, np.ones((5, 5), np.uint8))
    mask, obstacles = find_obstacles(mask.astype(np.float32), threshold=128)
    (loc,) = locate_obstacles(mask, obstacles, geometry(cam), depth)
    assert loc.method == "depth"
    assert loc.distance == pytest.approx(20.0, rel=0.005)


def test_too_few_depth_readings_fall_back_to_the_ground():
    cam = CAMERA
    box = box_ahead(cam, 20.0, 0.0, "car")
    _, depth, labels = render(cam, [box])
    sparse = np.where(labels > 0, np.nan, depth).astype(np.float32)  # no reading on the box
    rows, cols = np.nonzero(labels)
    sparse[rows[::10], cols[::10]] = depth[rows[::10], cols[::10]]  # 10 % of it has one
    _, (loc,) = locate_scene(cam, [box], sparse)
    assert loc.method == "ground"
    assert loc.distance == pytest.approx(20.0, rel=0.02)


def test_region_above_the_horizon_has_no_ground_location():
    cam = CAMERA
    mask = np.zeros((cam.height, cam.width), np.uint8)
    horizon = cam.project(np.array([[1e6, cam.translation[1], 0.0]]))[0, 1]
    mask[int(horizon) - 60 : int(horizon) - 20, 400:480] = 255  # a region of sky
    mask, obstacles = find_obstacles(mask.astype(np.float32), threshold=128)
    (loc,) = locate_obstacles(mask, obstacles, geometry(cam), None)
    assert loc.method == "none"
    assert all(math.isnan(v) for v in (loc.x, loc.y, loc.z, loc.distance, loc.width, loc.height))


def test_order_follows_the_obstacles_and_no_camera_means_none():
    cam = CAMERA
    near = box_ahead(cam, 8.0, -2.0, "car")  # the larger region: find_obstacles lists it first
    far = box_ahead(cam, 30.0, 2.0, "board")
    mask, _, _ = render(cam, [near, far])
    mask, obstacles = find_obstacles(mask.astype(np.float32), threshold=128)
    assert len(obstacles) == 2
    truths = [b.nearest(*cam.translation[:2]) for b in (near, far)]
    forward = locate_obstacles(mask, obstacles, geometry(cam), None)
    backward = locate_obstacles(mask, obstacles[::-1], geometry(cam), None)
    assert [loc.distance for loc in forward] == pytest.approx(truths, rel=0.02)
    assert backward == forward[::-1]
    unplaced = locate_obstacles(mask, obstacles, None, None)
    assert len(unplaced) == 2 and all(loc.method == "none" for loc in unplaced)
    assert all(math.isnan(loc.distance) for loc in unplaced)
    assert locate_obstacles(mask, [], geometry(cam), None) == []


def test_inputs_that_disagree_are_a_geometry_error():
    cam = CAMERA
    box = box_ahead(cam, 10.0, 0.0, "car")
    mask, depth, _ = render(cam, [box])
    mask, obstacles = find_obstacles(mask.astype(np.float32), threshold=128)
    with pytest.raises(GeometryError, match="camera's image size"):
        locate_obstacles(mask, obstacles, geometry(cam.scaled(2.0)), None)
    with pytest.raises(GeometryError, match="align"):
        locate_obstacles(mask, obstacles, geometry(cam), depth[::2, ::2])
    other = np.zeros_like(mask)
    with pytest.raises(GeometryError, match="not a region of the mask"):
        locate_obstacles(other, obstacles, geometry(cam), None)


def test_decode_depth():
    mm = np.array([[0, 1500], [65535, 1]], np.uint16)
    np.testing.assert_array_equal(
        decode_depth(mm, "16UC1"), np.array([[np.nan, 1.5], [65.535, 0.001]], np.float32)
    )
    metres = np.array([[0.0, np.nan], [-1.0, np.inf], [2.25, 1e-3]], np.float32)
    out = decode_depth(metres, "32FC1")
    assert out.dtype == np.float32
    np.testing.assert_array_equal(
        out, np.array([[np.nan, np.nan], [np.nan, np.nan], [2.25, 1e-3]], np.float32)
    )
    big_endian = mm.astype(">u2")  # a message with is_bigendian set
    np.testing.assert_array_equal(decode_depth(big_endian, "16UC1"), decode_depth(mm, "16UC1"))
    with pytest.raises(GeometryError, match="not supported"):
        decode_depth(mm, "8UC1")
    with pytest.raises(GeometryError, match="uint16"):
        decode_depth(metres, "16UC1")
    with pytest.raises(GeometryError, match="2-D"):
        decode_depth(np.zeros((2, 2, 1), np.float32), "32FC1")


def test_align_depth_is_nearest_neighbour():
    small = np.array([[1.0, 2.0], [3.0, np.nan]], np.float32)
    big = align_depth(small, 4, 6)
    expected = np.repeat(np.repeat(small, 2, axis=0), 3, axis=1)
    np.testing.assert_array_equal(big, expected)
    np.testing.assert_array_equal(align_depth(big, 2, 2), small)  # each takes its centre
    assert align_depth(small, 2, 2) is not None
    with pytest.raises(GeometryError, match="positive"):
        align_depth(small, 0, 4)
    with pytest.raises(GeometryError, match="2-D"):
        align_depth(np.zeros(4, np.float32), 2, 2)
