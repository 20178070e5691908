"""Several cameras served by one node process over real DDS (loopback, a domain of this module's
own): per-camera topics, headers, thresholds, health, fairness and start-up errors."""

import os
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy not installed: run scripts/setup")
from diagnostic_msgs.msg import DiagnosticStatus
from helpers.node import node_params, stop
from helpers.ros_probe import OUTPUTS, RELIABLE, Probe, start_node, startup_failure
from sensor_msgs.msg import Image

from sleeg_ros.outputs import OUTPUTS as NODE_OUTPUTS

CAMERAS = ("front", "left", "right")
FRAMES = {  # different sizes: frames are batched by size, so this makes two batches
    "front": np.random.default_rng(1).integers(0, 256, (96, 160, 3), dtype=np.uint8),
    "left": np.random.default_rng(2).integers(0, 256, (96, 160, 3), dtype=np.uint8),
    "right": np.random.default_rng(3).integers(0, 256, (120, 200, 3), dtype=np.uint8),
}
# the per-frame outputs on by default that carry the input's header (not the 3D ones)
FRAME_OUTPUTS = [o.topic for o in NODE_OUTPUTS if o.default and not o.in_output_frame]


@pytest.fixture(scope="module")
def domain(ros_env) -> tuple[dict[str, str], int]:
    domain_id = 10 + (os.getpid() + 61) % 90
    return {**ros_env, "ROS_DOMAIN_ID": str(domain_id)}, domain_id


class CameraProbe(Probe):
    """Publishes /<camera>/image and collects /<camera>/<output> of every camera."""

    def __init__(self, domain_id: int, outputs: list[str]) -> None:
        super().__init__(outputs=("/diagnostics",), domain_id=domain_id)
        self.pubs = {c: self.node.create_publisher(Image, f"/{c}/image", RELIABLE) for c in CAMERAS}
        for c in CAMERAS:
            for out in outputs:
                topic = f"/{c}/{out}"
                self.subs.append(
                    self.node.create_subscription(
                        OUTPUTS[out], topic, lambda m, t=topic: self.got[t].append(m), RELIABLE
                    )
                )

    def matched(self) -> bool:
        return all(p.get_subscription_count() > 0 for p in self.pubs.values()) and all(
            s.get_publisher_count() > 0 for s in self.subs
        )

    def send(self, camera: str, sec: int, nanosec: int = 0) -> None:
        msg = self.image(FRAMES[camera], (sec, nanosec))
        msg.header.frame_id = f"{camera}_optical"
        self.pubs[camera].publish(msg)

    def camera_statuses(self) -> list[dict[str, DiagnosticStatus]]:
        """Per /diagnostics message of the node: camera → its status."""
        out = []
        for msg in self.got["/diagnostics"]:
            ours = {s.name.rsplit("/", 2)[-2]: s for s in msg.status if "sleeg_anomaly" in s.name}
            if ours:
                out.append(ours)
        return out


def counters(statuses: dict[str, DiagnosticStatus]) -> dict[str, dict[str, int]]:
    """camera → the node's frame counters (frames_in, dropped) in one /diagnostics status."""
    values = {c: {kv.key: kv.value for kv in st.values} for c, st in statuses.items()}
    return {c: {k: int(v[k]) for k in ("frames_in", "dropped")} for c, v in values.items()}


def start(env, tiny_model, *extra: str):
    return start_node(
        env, *node_params(tiny_model, "cameras:=[front, left, right]", *extra), remap="x:=x"
    )


def test_three_cameras_each_output_carries_its_own_input_header(domain, tiny_model):
    env, domain_id = domain
    # max_batch 3: front and left (one size) run as one batch, as on CUDA (the CPU's auto is 1)
    lower_half = "left.roi_polygon:=[0.0, 0.5, 1.0, 0.5, 1.0, 1.0, 0.0, 1.0]"
    proc = start(env, tiny_model, "right.threshold:=1000000.0", lower_half, "max_batch:=3")
    probe = CameraProbe(domain_id, FRAME_OUTPUTS)
    try:
        assert probe.wait_for(probe.matched, 60), "the node never matched every camera topic"
        beside = lambda: all(  # noqa: E731
            probe.node.count_subscribers(f"/{c}/camera_info") for c in CAMERAS
        )  # each camera's camera_info beside its image
        assert probe.wait_for(beside, 10) and not probe.node.count_subscribers("/camera_info")
        done = lambda: all(  # noqa: E731
            probe.stamped(f"/{c}/{t}", 100 + i)
            for i, c in enumerate(CAMERAS)
            for t in FRAME_OUTPUTS
        )
        end = time.monotonic() + 60
        while not done() and time.monotonic() < end:
            for i, c in enumerate(CAMERAS):  # together: they meet in one round of the node
                probe.send(c, 100 + i, 7 + i)
            probe.wait_for(done, 1.0)
        assert done(), {t: len(v) for t, v in probe.got.items()}
        for i, c in enumerate(CAMERAS):
            h, w = FRAMES[c].shape[:2]
            for t in FRAME_OUTPUTS:
                msgs = [m for m in probe.got[f"/{c}/{t}"]]
                assert all(m.header.stamp.sec == 100 + i for m in msgs), (c, t)  # nobody else's
                m = msgs[0]
                assert (m.header.stamp.nanosec, m.header.frame_id) == (7 + i, f"{c}_optical")
                if t != "anomaly/obstacles":
                    assert (m.height, m.width) == (h, w), (c, t)
        thresholds = {c: probe.got[f"/{c}/anomaly/obstacles"][0].threshold for c in CAMERAS}
        assert thresholds == {"front": 0.0, "left": 0.0, "right": 1e6}  # head file's / its own
        right_mask = np.frombuffer(probe.got["/right/anomaly/mask"][0].data, np.uint8)
        assert not right_mask.any()
        scores = {}
        for c in CAMERAS:
            msg = probe.got[f"/{c}/anomaly/score"][0]
            scores[c] = np.frombuffer(msg.data, np.float32).reshape(msg.height, msg.width)
        top, bottom = scores["left"][:40], scores["left"][56:]  # left's ROI: the lower half
        assert np.ptp(top) == 0 and top.max() <= bottom.min()  # outside: the lowest score
        assert np.ptp(scores["front"][:40]) > 0  # the other cameras are judged everywhere
        # /diagnostics comes once a second: the outputs can all arrive before the first status
        assert probe.wait_for(probe.camera_statuses, 10), "no /diagnostics status from the node"
        statuses = probe.camera_statuses()[-1]
        assert set(statuses) == set(CAMERAS)
        assert statuses["front"].name == "sleeg_anomaly: /front/image"
        assert statuses["right"].hardware_id == "/right/image"
    finally:
        probe.close()
        code, out = stop(proc)
    assert code == 0, out
    assert "3 camera(s)" in out


def test_a_silent_camera_alone_reports_error_and_a_flooding_one_does_not_starve_the_others(
    domain, tiny_model
):
    """Each round left sends one frame and front a burst of 4 right after (faster than the node
    takes them), right nothing; the next round waits until this one's newest frames of front and
    left are answered. With a latest-frame slot per camera both always are, left never drops a
    frame and front's bursts overflow only its own slot; a slot shared by the cameras would lose
    left's or front's newest frame to the other's and never answer it. Throughput under a flood:
    benchmarks/node_cameras.py --flood."""
    env, domain_id = domain
    health = ("status_period_s:=0.25", "max_input_age_s:=1.5", "health_window_s:=3.0")
    proc = start(env, tiny_model, *health)
    probe = CameraProbe(domain_id, ["anomaly/score"])
    try:
        assert probe.wait_for(probe.matched, 60), "the node never matched every camera topic"

        def answered(camera: str, sec: int, nanosec: int) -> bool:
            return any(
                m.header.stamp.nanosec == nanosec
                for m in probe.stamped(f"/{camera}/anomaly/score", sec)
            )

        def round_trip(sec: int, timeout: float = 20.0) -> bool:
            """One round; whether its newest frames were answered (a lost one never is: the
            timeout only bounds the wait)."""
            probe.send("left", sec)
            for k in range(4):
                probe.send("front", sec, k)
            both = lambda: answered("left", sec, 0) and answered("front", sec, 3)  # noqa: E731
            return probe.wait_for(both, timeout)

        # the first round can meet the node still matching its subscriptions: repeat it
        assert any(round_trip(1000, 1.0) for _ in range(60)), "the node never answered both"
        seen = len(probe.camera_statuses())  # counters from after that round's frames
        assert probe.wait_for(lambda: len(probe.camera_statuses()) > seen, 10), "no status"
        before = counters(probe.camera_statuses()[-1])
        rounds = list(range(1001, 1011))
        missed = next((sec for sec in rounds if not round_trip(sec)), None)
        assert missed is None, f"round {missed}: its newest front or left frame never answered"
        probe.send("left", 1011)  # both cameras fresh for the next status
        probe.send("front", 1011)
        seen = len(probe.camera_statuses())
        assert probe.wait_for(lambda: len(probe.camera_statuses()) > seen, 10), "no new status"
        last = probe.camera_statuses()[-1]
        assert not probe.got["/right/anomaly/score"]
        levels = {c: last[c].level for c in CAMERAS}
        assert levels == {
            "front": DiagnosticStatus.OK,
            "left": DiagnosticStatus.OK,
            "right": DiagnosticStatus.ERROR,
        }, {c: last[c].message for c in CAMERAS}
        now = counters(last)
        assert now["right"]["frames_in"] == 0
        assert now["left"]["frames_in"] - before["left"]["frames_in"] >= len(rounds)
        assert now["left"]["dropped"] == before["left"]["dropped"]  # never replaced by front's
    finally:
        probe.close()
        code, out = stop(proc)
    assert code == 0, out


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (["cameras:=[front, front]"], "parameter 'cameras': a name is repeated"),
        (["cameras:=[front, 2nd]"], "parameter 'cameras': '2nd' not a camera name"),
        (
            ["cameras:=[front, left]", "left.image_transport:=h264"],
            "parameter 'left.image_transport': 'h264' is not one of raw, compressed",
        ),
        (
            ["cameras:=[front, left]", "left.roi_polygon:=[0.0, 0.0, 1.0]"],
            "parameter 'left.roi_polygon'",
        ),
    ],
)
def test_bad_camera_parameters_stop_the_start_naming_the_parameter(
    domain, tiny_model, params, message
):
    env, _ = domain
    out = startup_failure(env, *node_params(tiny_model, *params))
    assert message in out, out


def test_launch_arguments_give_the_camera_list_and_their_remappings():
    from sleeg_ros.cameras import launch_cameras

    assert launch_cameras("", "") == ([], [])
    assert launch_cameras("[front, left]", "/f/image_raw,'/l/image_raw'") == (
        ["front", "left"],
        [("front/image", "/f/image_raw"), ("left/image", "/l/image_raw")],
    )
    assert launch_cameras("front,left", "") == (["front", "left"], [])
    with pytest.raises(ValueError, match="1 topic\\(s\\) for 2 camera\\(s\\)"):
        launch_cameras("front,left", "/f/image_raw")
    with pytest.raises(ValueError, match="launch argument 'cameras': '2nd' not a camera name"):
        launch_cameras("front,2nd", "")


def test_the_launch_files_parameter_module_does_not_load_pytorch():
    """`ros2 launch` imports sleeg_ros.cameras in the launch process itself."""
    code = "import sys, sleeg_ros.cameras; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr
