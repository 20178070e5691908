"""The anomaly node as a real process over DDS (loopback): outputs, parameters, bad frames,
overload and shutdown. The test process is the other ROS participant."""

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy not installed: run scripts/setup")
from helpers.node import FRAME, frames_in_after, jpeg, node_params, stop
from helpers.ros_probe import Probe, start_node

from sleeg_ros.msg import AnomalyObstacleArray


@pytest.fixture(scope="module")
def running(ros_env, tiny_model):
    proc = start_node(ros_env, *node_params(tiny_model))
    probe = Probe()
    probe.wait_for_node()
    yield proc, probe
    probe.close()
    if proc.poll() is None:
        stop(proc)


def test_autostart_makes_the_node_active(running):
    """The default autostart: configured and active with no lifecycle manager."""
    _, probe = running
    assert probe.lifecycle_state() == "active"
    assert probe.status()["lifecycle_state"] == "active"


def test_every_output_arrives_with_the_input_header(running):
    _, probe = running
    probe.got.clear()
    topics = ["segmentation", "segmentation/color", "anomaly/score", "anomaly/mask",
              "anomaly/obstacles", "overlay"]  # fmt: skip
    msg = probe.image(FRAME, (42, 7))
    assert probe.publish_until(
        probe.image_pub, msg, lambda: all(probe.stamped(t, 42) for t in topics)
    )
    expect = {
        "segmentation": "mono8",
        "segmentation/color": "rgb8",
        "anomaly/score": "32FC1",
        "anomaly/mask": "mono8",
        "overlay": "rgb8",
    }
    for topic, encoding in expect.items():
        msg = probe.stamped(topic, 42)[0]
        assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (42, 7), topic
        assert msg.header.frame_id == "cam_front", topic
        assert (msg.encoding, msg.height, msg.width) == (encoding, 96, 160), topic
    ids = np.frombuffer(probe.stamped("segmentation", 42)[0].data, np.uint8)
    assert ids.max() < 19
    mask = np.frombuffer(probe.stamped("anomaly/mask", 42)[0].data, np.uint8)
    assert set(np.unique(mask)) <= {0, 255}
    score = np.frombuffer(probe.stamped("anomaly/score", 42)[0].data, np.float32)
    assert np.isfinite(score).all()
    obs: AnomalyObstacleArray = probe.stamped("anomaly/obstacles", 42)[0]
    assert obs.header.stamp.sec == 42 and obs.threshold == pytest.approx(0.0)
    assert obs.anomalous_fraction == pytest.approx(np.count_nonzero(mask) / mask.size, abs=1e-6)
    assert sum(o.pixel_area for o in obs.obstacles) <= np.count_nonzero(mask)


def test_raw_transport_ignores_compressed_frames(running):
    _, probe = running
    assert probe.jpeg_pub.get_subscription_count() == 0  # the one input is `image`
    before = int(probe.status()["frames_in"])
    assert frames_in_after(probe, probe.jpeg_pub, [jpeg(98)] * 5) == before
    assert not probe.stamped("anomaly/score", 98)
    msg = probe.image(FRAME, (97, 0))
    assert probe.publish_until(probe.image_pub, msg, lambda: probe.stamped("anomaly/score", 97))
    assert int(probe.status()["frames_in"]) > before


def test_runtime_threshold_changes_the_mask(running):
    _, probe = running
    for sec, threshold, value in ((5, -1e9, 255), (6, 1e9, 0)):
        assert probe.set_parameters(threshold=threshold) == [True]
        msg = probe.image(FRAME, (sec, 0))
        assert probe.publish_until(
            probe.image_pub, msg, lambda s=sec: probe.stamped("anomaly/mask", s)
        )
        mask = np.frombuffer(probe.stamped("anomaly/mask", sec)[0].data, np.uint8)
        assert (mask == value).all()
    assert probe.set_parameters(threshold=float("inf")) == [False]
    assert probe.set_parameters(inference_width=64) == [False]  # read-only at run time
    assert probe.set_parameters(threshold=0.0) == [True]


def test_output_switch_stops_an_output(running):
    _, probe = running
    assert probe.set_parameters(publish_color=False) == [True]
    msg = probe.image(FRAME, (2, 0))
    assert probe.publish_until(probe.image_pub, msg, lambda: probe.stamped("segmentation", 2))
    probe.spin(0.3)
    assert not probe.stamped("segmentation/color", 2)
    assert probe.set_parameters(publish_color=True) == [True]


def test_bad_frames_are_skipped_and_the_node_stays_up(running):
    proc, probe = running
    short = probe.image(FRAME, (3, 3))
    short.data = short.data[:100]
    huge = probe.image(np.zeros((8, 8, 3), np.uint8), (3, 4))
    huge.height, huge.width, huge.step = 100_000, 100_000, 300_000
    bad = [
        (probe.image_pub, probe.image(FRAME, (3, 0), encoding="nv21")),  # unsupported
        (probe.image_pub, probe.image(np.zeros((0, 0, 3), np.uint8), (3, 1))),
        (probe.image_pub, probe.image(FRAME[:2, :2], (3, 2))),
        (probe.image_pub, short),
        (probe.image_pub, huge),
    ]
    for pub, msg in bad:  # each kind is counted as a bad frame (re-sent if DDS drops it)
        before = int(probe.status()["bad_frames"])
        counted = lambda b=before: int(probe.latest_status().get("bad_frames", b)) > b  # noqa: E731
        assert probe.publish_until(pub, msg, counted, timeout=30), msg
        assert proc.poll() is None
    msg = probe.image(FRAME, (4, 0))
    ok = probe.publish_until(probe.image_pub, msg, lambda: probe.stamped("anomaly/mask", 4))
    assert ok, "node stopped processing"
    assert proc.poll() is None
