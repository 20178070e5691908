"""The node over real DDS (loopback, a domain of this module's own): more input encodings end to
end, and the frame geometry (resize_mode, ignore_mask, roi_polygon) on a 16:9 camera frame."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest
from helpers.paths import shared_path

pytest.importorskip("rclpy", reason="rclpy not installed: run scripts/setup")
from helpers.images import to_yuv422
from helpers.node import node_model, node_params, stop
from helpers.ros_probe import Probe, start_node, startup_failure
from sensor_msgs.msg import Image

from sleeg_core.data.image_msgs import image_to_rgb
from sleeg_core.data.images import read_rgb, to_batch
from sleeg_core.model.inference import AnomalySegmenter

INFERENCE = (64, 128)  # node_params' inference size
IMAGES = ("segmentation", "segmentation/color", "anomaly/score", "anomaly/mask", "overlay")
EVERYTHING = ("threshold:=-1000000000.0", "mask_open_px:=0")  # the mask is the judged area
HOOD_ROW = 612  # the bottom 15 % of 720 rows


@pytest.fixture(scope="module")
def domain(ros_env) -> tuple[dict[str, str], int]:
    """The node's environment and the probe's domain id: not the other node tests' domains."""
    domain_id = 10 + (os.getpid() + 20) % 90
    return {**ros_env, "ROS_DOMAIN_ID": str(domain_id)}, domain_id


@pytest.fixture(scope="module")
def model(tiny_model) -> AnomalySegmenter:
    return node_model(tiny_model)


@pytest.fixture(scope="module")
def road() -> np.ndarray:
    """A 1280×720 (16:9) road frame."""
    frames = shared_path("anomaly", "road_anomaly", "frames")
    frame = read_rgb(frames / "animals03_Zebras_in_the_road.jpg")
    assert frame.shape == (720, 1280, 3)
    return frame


def score_of(model: AnomalySegmenter, rgb: np.ndarray, mode: str = "pad") -> np.ndarray:
    """What the node computes for a decoded frame (the default resize mode: pad)."""
    pred = model(to_batch(rgb), scores=("sleeg",), size=INFERENCE, resize_mode=mode)
    return pred.scores["sleeg"][0].numpy()


def pixels(msg: Image) -> np.ndarray:
    dtype = np.float32 if msg.encoding == "32FC1" else np.uint8
    return np.frombuffer(msg.data, dtype).reshape(msg.height, msg.width, -1).squeeze(-1)


def run_frames(
    env: dict[str, str], domain_id: int, params: list[str], frames: list[tuple[np.ndarray, str]]
) -> tuple[Probe, list[Image]]:
    """Start the node, send frame i (pixels, encoding; stamped i) until all its outputs arrive,
    stop the node; the probe with what it received, and the messages sent."""
    proc = start_node(env, *params)
    probe = Probe(domain_id=domain_id)
    msgs = [probe.image(data, (i, 0), encoding) for i, (data, encoding) in enumerate(frames)]
    try:
        probe.wait_for_node()
        for i, msg in enumerate(msgs):
            arrived = lambda i=i: all(probe.stamped(t, i) for t in (*IMAGES, "anomaly/obstacles"))  # noqa: E731
            assert probe.publish_until(probe.image_pub, msg, arrived), msg.encoding
    finally:
        probe.close()
        rc, out = stop(proc)
    assert rc == 0, out
    return probe, msgs


def test_bgra8_and_yuv422_frames_flow_end_to_end(domain, tiny_model, model):
    """A real frame as bgra8 (exact) and as yuv422/UYVY (lossy): the node publishes the score of
    what sleeg_core decodes, at the frame's size."""
    env, domain_id = domain
    driving = read_rgb(shared_path("driving", "frankfurt_000000_000294_leftImg8bit.png"))
    frame = cv2.resize(driving, (320, 160), interpolation=cv2.INTER_AREA)
    alpha = np.full((160, 320, 1), 200, np.uint8)
    frames = [
        (np.concatenate([frame[..., ::-1], alpha], axis=2), "bgra8"),
        (to_yuv422(frame, "uyvy"), "yuv422"),
    ]
    got, msgs = run_frames(env, domain_id, node_params(tiny_model), frames)
    for sec, msg in enumerate(msgs):
        for topic in IMAGES:
            out = got.stamped(topic, sec)[0]
            assert (out.height, out.width) == (160, 320), (msg.encoding, topic)
        decoded = image_to_rgb(msg, 2**31)
        if msg.encoding == "bgra8":
            np.testing.assert_array_equal(decoded, frame)
        else:
            assert np.abs(decoded.astype(int) - frame).mean() < 1.0
        score = pixels(got.stamped("anomaly/score", sec)[0])
        np.testing.assert_allclose(score, score_of(model, decoded), atol=1e-4)


def test_hood_ignore_mask_and_roi_on_a_16_9_frame(domain, tiny_model, model, road, tmp_path):
    """pad mode (the default) on 1280×720: every output at 1280×720 and pixel-aligned; nothing in
    the hood (bottom 15 %, an ignore mask) or left of the ROI (x < 0.125) is anomalous."""
    env, domain_id = domain
    hood = np.zeros((720, 1280), np.uint8)
    hood[HOOD_ROW:] = 255
    cv2.imwrite(str(tmp_path / "hood.png"), hood)
    params = node_params(
        tiny_model,
        *EVERYTHING,
        f"ignore_mask:={tmp_path / 'hood.png'}",
        "roi_polygon:=[0.125, 0.0, 1.0, 0.0, 1.0, 1.0, 0.125, 1.0]",
    )
    got, _ = run_frames(env, domain_id, params, [(road, "rgb8")])
    for topic in IMAGES:
        assert (got.stamped(topic, 0)[0].height, got.stamped(topic, 0)[0].width) == (720, 1280)
    judged = np.zeros((720, 1280), dtype=bool)
    judged[:HOOD_ROW, 160:] = True
    mask = pixels(got.stamped("anomaly/mask", 0)[0])
    np.testing.assert_array_equal(mask, np.where(judged, 255, 0))
    score = pixels(got.stamped("anomaly/score", 0)[0])
    assert (score[~judged] == score[judged].min()).all()
    np.testing.assert_allclose(score[judged], score_of(model, road)[judged], atol=1e-4)
    assert pixels(got.stamped("segmentation", 0)[0]).max() < 19  # pad: every pixel is seen
    obstacles = got.stamped("anomaly/obstacles", 0)[0].obstacles
    assert obstacles and all(o.roi.y_offset + o.roi.height <= HOOD_ROW for o in obstacles)
    box = obstacles[0].roi
    assert (box.x_offset, box.y_offset, box.width, box.height) == (160, 0, 1120, HOOD_ROW)


def test_crop_mode_leaves_the_cut_rows_unjudged(domain, tiny_model, model, road):
    """crop on 1280×720 for 128×64: rows 40..679 are seen; the others are segmentation 255,
    mask 0 and the lowest score, at the frame's size."""
    env, domain_id = domain
    params = node_params(tiny_model, *EVERYTHING, "resize_mode:=crop")
    got, _ = run_frames(env, domain_id, params, [(road, "rgb8")])
    seen = np.zeros((720, 1280), dtype=bool)
    seen[40:680] = True
    ids = pixels(got.stamped("segmentation", 0)[0])
    assert (ids[~seen] == 255).all() and ids[seen].max() < 19
    np.testing.assert_array_equal(pixels(got.stamped("anomaly/mask", 0)[0]), np.where(seen, 255, 0))
    score = pixels(got.stamped("anomaly/score", 0)[0])
    np.testing.assert_allclose(score, score_of(model, road, "crop"), atol=1e-4)
    assert (score[~seen] == score[seen].min()).all()


@pytest.mark.parametrize(
    ("param", "message"),
    [
        ("resize_mode:=zoom", "parameter 'resize_mode': 'zoom' is not one of stretch, pad, crop"),
        (
            "roi_polygon:=[0.0, 0.5, 1.0, 0.5]",
            "parameter 'roi_polygon': needs x,y pairs of at least",
        ),
        ("roi_polygon:=[0.0, 0.5, 1.5, 0.5, 1.0, 1.0]", "parameter 'roi_polygon': coordinates are"),
        ("ignore_mask:=/nowhere/hood.png", "parameter 'ignore_mask': mask image not found"),
    ],
)
def test_bad_geometry_parameters_stop_the_node_naming_them(domain, tiny_model, param, message):
    out = startup_failure(domain[0], *node_params(tiny_model, param))
    assert message in out, out
