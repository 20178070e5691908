"""The node's health on /diagnostics and its QoS (overrides, incompatible endpoints), over real
DDS on a domain of this module's own: /diagnostics is one topic for every node of a domain."""

import os
import signal
import time

import pytest
import yaml

pytest.importorskip("rclpy", reason="rclpy not installed: run scripts/setup")
from diagnostic_msgs.msg import DiagnosticStatus
from helpers.node import FRAME, log_lines, node_params
from helpers.ros_probe import RELIABLE, Probe, start_node, startup_failure
from rclpy.qos import QoSReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image

HEALTH = (
    "status_period_s:=0.2",
    "max_input_age_s:=1.0",
    "health_window_s:=2.0",
    "max_bad_frame_rate:=0.2",
    "hardware_id:=front_camera",
)


@pytest.fixture(scope="module")
def domain(ros_env) -> tuple[dict[str, str], int]:
    """The node's environment and the probe's domain id: not the other node tests' domain."""
    domain_id = 10 + (os.getpid() + 45) % 90
    return {**ros_env, "ROS_DOMAIN_ID": str(domain_id)}, domain_id


def feed_until(
    probe: Probe,
    frames: list[Image],
    level: bytes,
    timeout: float = 30.0,
    period: float = 0.1,
    timed: bool = False,
) -> tuple[DiagnosticStatus, float]:
    """Publish `frames` in turn every `period` s (stamped now) until a new status of the node
    has `level` (and, if `timed`, inference times); that status and the seconds it took."""
    start, seen = time.monotonic(), len(probe.statuses())
    for i in range(round(timeout / period)):
        msg = frames[i % len(frames)]
        msg.header.stamp = probe.node.get_clock().now().to_msg()
        probe.image_pub.publish(msg)
        probe.spin(period)
        news = [s for s in probe.statuses()[seen:] if s.level == level]
        if news := [s for s in news if not timed or values(s)["inference_ms_p50"] > 0]:
            return news[0], time.monotonic() - start
    raise AssertionError(f"no status of level {level} within {timeout} s: {probe.statuses()[-1]}")


def wait_level(probe: Probe, level: bytes, timeout: float = 30.0) -> tuple[DiagnosticStatus, float]:
    """Without frames, until a new status of the node has `level`; it and the seconds it took."""
    start, seen = time.monotonic(), len(probe.statuses())
    got = lambda: [s for s in probe.statuses()[seen:] if s.level == level]  # noqa: E731
    assert probe.wait_for(lambda: bool(got()), timeout), probe.statuses()[-1]
    return got()[0], time.monotonic() - start


def values(status: DiagnosticStatus) -> dict[str, float]:
    """The status's numbers (every value but the lifecycle state)."""
    return {kv.key: float(kv.value) for kv in status.values if kv.key != "lifecycle_state"}


def test_health_follows_the_input(domain, tiny_model):
    env, domain_id = domain
    proc = start_node(env, *node_params(tiny_model, *HEALTH))
    probe = Probe(outputs=("/diagnostics", "anomaly/score"), domain_id=domain_id)  # timed
    try:
        probe.wait_for_node()
        first = probe.next_status()  # no frame yet
        assert first.level == DiagnosticStatus.ERROR
        assert first.message.startswith("no frame received yet")
        assert first.name == "sleeg_anomaly: /cam/image" and first.hardware_id == "front_camera"
        assert values(first)["publishers"] == 1  # the probe's, matched, silent
        silent = lambda: "from 1 matched publisher: " in probe.statuses()[-1].message  # noqa: E731
        assert probe.wait_for(silent, 10.0), probe.statuses()[-1].message  # after 1 s
        assert "config/fastdds.xml" in probe.statuses()[-1].message

        good = [probe.image(FRAME, (0, 0))]
        ok, _ = feed_until(probe, good, DiagnosticStatus.OK, timed=True)
        assert ok.message == "ok"
        v = values(ok)
        assert v["frames_in"] >= 1 and v["processed"] >= 1 and v["bad_frames"] == 0
        assert v["fps_in"] > 0 and v["fps_out"] > 0 and v["dropped"] >= 0
        assert 0 <= v["frame_age_s"] < 5 and v["input_age_s"] < 1.0
        assert 0 < v["inference_ms_p50"] <= v["inference_ms_p95"]
        assert v["inference_ms_p50"] <= v["processing_ms_p50"] <= v["latency_ms_p50"]
        assert "gpu_memory_mb" not in v  # on CUDA only

        stale, took = wait_level(probe, DiagnosticStatus.ERROR)  # the camera stops
        assert took > 0.7, took  # not before max_input_age_s (the exact rule: test_health)
        assert stale.message.startswith("no frame for ") and values(stale)["input_age_s"] > 1.0
        feed_until(probe, good, DiagnosticStatus.OK)

        short = probe.image(FRAME, (0, 0))
        short.data = short.data[:100]  # truncated: a bad frame of any encoding
        burst, _ = feed_until(probe, [short], DiagnosticStatus.WARN, period=0.05)
        assert "bad frames over 2 s (max_bad_frame_rate 0.2)" in burst.message
        assert values(burst)["bad_frame_rate"] > 0.2
        recovered, took = feed_until(probe, good, DiagnosticStatus.OK)
        assert took > 1.0, took  # once the burst has left the 2 s window (test_health)
        assert values(recovered)["bad_frames"] >= 1 and values(recovered)["bad_frame_rate"] <= 0.2
    finally:
        probe.close()
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0, out
    assert "/diagnostics ERROR: no frame received yet" in out  # level changes are logged
    assert "/diagnostics ERROR: no frame received yet from 1 matched publisher: " in out  # the hint
    assert "/diagnostics OK: ok" in out and "/diagnostics WARN: " in out


def test_qos_overrides_set_the_qos_and_incompatible_endpoints_are_logged(
    domain, tiny_model, tmp_path
):
    env, domain_id = domain
    overrides = {
        "/cam/image": {"subscription": {"reliability": "reliable", "depth": 3}},
        "/overlay": {"publisher": {"reliability": "best_effort"}},
    }
    params = tmp_path / "qos.yaml"
    params.write_text(
        yaml.safe_dump({"sleeg_anomaly": {"ros__parameters": {"qos_overrides": overrides}}})
    )
    proc = start_node(env, *node_params(tiny_model), params_file=params)
    lines = log_lines(proc)
    probe = Probe(outputs=("segmentation",), domain_id=domain_id)
    try:
        probe.wait_for_node()
        graph = probe.node

        def reliability(endpoints) -> list[QoSReliabilityPolicy]:
            """Of the node's endpoints in a graph query (named once discovery got that far)."""
            return [i.qos_profile.reliability for i in endpoints if i.node_name == "sleeg_anomaly"]

        subs = lambda: reliability(graph.get_subscriptions_info_by_topic("/cam/image"))  # noqa: E731
        pubs = lambda: reliability(graph.get_publishers_info_by_topic("/overlay"))  # noqa: E731
        assert probe.wait_for(lambda: subs() and pubs(), 30)
        # sensor-data QoS (best effort) unless overridden; outputs are reliable unless overridden
        assert subs() == [QoSReliabilityPolicy.RELIABLE]
        assert pubs() == [QoSReliabilityPolicy.BEST_EFFORT]

        graph.create_publisher(Image, "/cam/image", qos_profile_sensor_data)  # best effort
        graph.create_subscription(Image, "/overlay", lambda _: None, RELIABLE)
        wanted = (
            "incompatible QoS on /cam/image: a publisher offers a reliability this subscription "
            "cannot match (ours: reliable)",
            "incompatible QoS on /overlay: a subscription requests a reliability this publisher "
            "cannot match (ours: best_effort)",
            "qos_overrides./overlay.publisher.reliability",
        )
        logged = lambda: all(any(w in line for line in lines) for w in wanted)  # noqa: E731
        assert probe.wait_for(logged, 30), "".join(lines)
    finally:
        probe.close()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
    assert proc.returncode == 0, "".join(lines)


def test_a_bad_qos_override_fails_at_startup_naming_it(domain, tiny_model):
    env, _ = domain
    bad = "qos_overrides./cam/image.subscription.reliability:=sometimes"
    out = startup_failure(env, *node_params(tiny_model, bad))
    assert "parameter 'qos_overrides./cam/image.subscription'" in out and "sometimes" in out
