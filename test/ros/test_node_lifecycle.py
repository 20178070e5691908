"""The node as a managed (lifecycle) node over real DDS, on a domain of this module's own: with
autostart:=false a client drives every transition (lifecycle_msgs ChangeState and GetState), and
outputs flow only while the node is active."""

import os

import pytest

pytest.importorskip("rclpy", reason="rclpy not installed: run scripts/setup")
from diagnostic_msgs.msg import DiagnosticStatus
from helpers.node import FRAME, node_params, stop
from helpers.ros_probe import Probe, start_node

OUTPUTS = ("segmentation", "anomaly/score", "anomaly/obstacles")
MANUAL = "autostart:=false"


@pytest.fixture(scope="module")
def domain(ros_env) -> tuple[dict[str, str], int]:
    """The node's environment and the probe's domain id: not the other node tests' domains."""
    domain_id = 10 + (os.getpid() + 70) % 90
    return {**ros_env, "ROS_DOMAIN_ID": str(domain_id)}, domain_id


def status_in(probe: Probe, state: str) -> DiagnosticStatus:
    """The node's next status on /diagnostics that reports lifecycle `state`."""
    seen = len(probe.statuses())

    def found() -> list[DiagnosticStatus]:
        return [
            s
            for s in probe.statuses()[seen:]
            if {kv.key: kv.value for kv in s.values}["lifecycle_state"] == state
        ]

    assert probe.wait_for(lambda: bool(found()), 30), probe.statuses()[-1:]
    return found()[0]


def flows(probe: Probe, sec: int) -> bool:
    """Send a frame stamped `sec` until every output carries its header."""
    msg = probe.image(FRAME, (sec, 5))
    return probe.publish_until(
        probe.image_pub, msg, lambda: all(probe.stamped(t, sec) for t in OUTPUTS)
    )


def quiet(probe: Probe, sec: int, seconds: float = 1.5) -> bool:
    """Send a frame stamped `sec` every 0.1 s for `seconds`: True when no output carried it."""
    msg = probe.image(FRAME, (sec, 0))
    for _ in range(round(seconds / 0.1)):
        probe.image_pub.publish(msg)
        probe.spin(0.1)
    return not any(probe.stamped(t, sec) for t in OUTPUTS)


def test_a_client_drives_every_transition(domain, tiny_model):
    env, domain_id = domain
    proc = start_node(env, *node_params(tiny_model, MANUAL))
    probe = Probe(outputs=(*OUTPUTS, "/diagnostics"), domain_id=domain_id)
    subscribed = probe.image_pub.get_subscription_count
    advertised = lambda: [s.get_publisher_count() for s in probe.subs[: len(OUTPUTS)]]  # noqa: E731
    try:
        assert probe.lifecycle_state(timeout=60) == "unconfigured"
        status = status_in(probe, "unconfigured")  # /diagnostics in every state
        assert (status.level, status.message) == (DiagnosticStatus.WARN, "unconfigured")
        assert not probe.change_state("activate")  # not from unconfigured
        assert subscribed() == 0 and not any(advertised())

        assert probe.change_state("configure")
        assert probe.lifecycle_state() == "inactive"
        assert probe.wait_for(lambda: all(advertised()), 30)  # outputs, no input
        status = status_in(probe, "inactive")
        assert (status.level, status.message) == (DiagnosticStatus.WARN, "inactive")
        assert subscribed() == 0 and quiet(probe, 1)

        assert probe.change_state("activate")
        assert probe.lifecycle_state() == "active"
        assert flows(probe, 2)
        for topic in OUTPUTS:
            header = probe.stamped(topic, 2)[0].header
            assert (header.stamp.sec, header.stamp.nanosec, header.frame_id) == (2, 5, "cam_front")
        values = {kv.key: kv.value for kv in status_in(probe, "active").values}
        assert int(values["frames_in"]) >= 1 and int(values["processed"]) >= 1

        assert probe.change_state("deactivate")
        assert probe.lifecycle_state() == "inactive"
        assert probe.wait_for(lambda: subscribed() == 0, 30)  # the input unsubscribed
        assert quiet(probe, 3)

        assert probe.change_state("activate")  # again, as from configure
        assert flows(probe, 4)
        assert probe.change_state("deactivate")
        assert probe.change_state("cleanup")
        assert probe.lifecycle_state() == "unconfigured"
        assert probe.wait_for(lambda: not any(advertised()), 30)  # outputs withdrawn
        assert probe.change_state("shutdown")
        assert probe.lifecycle_state() == "finalized"
        status = status_in(probe, "finalized")
        assert (status.level, status.message) == (DiagnosticStatus.WARN, "finalized")
        assert proc.poll() is None  # finalized, not gone: it ends on a signal
    finally:
        probe.close()
        rc, out = stop(proc)
    assert rc == 0, out
    assert "Traceback" not in out and "[ERROR]" not in out, out
    steps = ("configure: now inactive", "activate: now active", "deactivate: now inactive",
             "activate: now active", "deactivate: now inactive", "cleanup: now unconfigured",
             "shutdown: now finalized")  # fmt: skip
    at = 0
    for step in steps:
        at = out.index(step, at) + 1  # in this order
    assert out.count("ready: enet on cpu") == 1  # the model loaded once, by configure


def test_a_failed_configure_is_reported_and_the_node_stays(domain, tiny_model, tmp_path):
    env, domain_id = domain
    params = (f"weights:={tmp_path / 'nope.pth'}", f"head:={tiny_model['head']}", MANUAL)
    proc = start_node(env, *params, "status_period_s:=0.5")
    probe = Probe(outputs=("/diagnostics",), domain_id=domain_id)
    try:
        assert probe.lifecycle_state(timeout=60) == "unconfigured"
        assert not probe.change_state("configure")
        assert probe.lifecycle_state() == "unconfigured"
        status = status_in(probe, "unconfigured")
        assert status.level == DiagnosticStatus.ERROR
        assert status.message.startswith("configure failed: parameter 'weights': file not found")
        assert proc.poll() is None
    finally:
        probe.close()
        rc, out = stop(proc)
    assert rc == 0, out
    assert "configure failed: parameter 'weights': file not found" in out
    assert "Traceback" not in out
