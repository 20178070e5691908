"""The custom messages travel between two real processes over DDS (loopback only)."""

import json
import signal
import subprocess

import pytest
from helpers.paths import ROS_PROCS

PROC = ROS_PROCS / "obstacle_pubsub.py"


def test_obstacle_array_between_processes(ros_env, python):
    pub = subprocess.Popen([python, str(PROC), "pub"], env=ros_env)
    try:
        out = subprocess.run(
            [python, str(PROC), "sub"], env=ros_env, capture_output=True, text=True, timeout=60
        )
    finally:
        pub.send_signal(signal.SIGINT)
        pub_rc = pub.wait(timeout=10)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["frame_id"] == "camera"
    assert got["stamp"] == [1234, 5678]
    assert got["threshold"] == pytest.approx(0.25)
    assert got["anomalous_fraction"] == pytest.approx(0.125)
    assert [o["roi"] for o in got["obstacles"]] == [[0, 5, 7, 3], [10, 5, 7, 4]]
    assert [o["pixel_area"] for o in got["obstacles"]] == [21, 22]
    assert got["obstacles"][1]["mean_score"] == pytest.approx(1.5)
    assert got["obstacles"][0]["centroid"] == pytest.approx([13.5, 6.0])
    assert pub_rc == 0, "publisher did not exit cleanly on SIGINT"
