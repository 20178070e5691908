"""`sleeg bag eval` with the node's 3D outputs asked for: anomaly/points is recorded with the
frames' stamps, the markers (no header to match a frame by) are left out."""

import json

import cv2
import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy not installed: run scripts/setup")
pytest.importorskip("rosbags", reason="rosbags not installed: run scripts/setup")
from helpers.bags import cli, eval_args, node_overrides, read_bag, stamp

from sleeg_core.cli import main as sleeg

FRAMES = 3


@pytest.fixture(scope="module")
def bag(tmp_path_factory):
    folder = tmp_path_factory.mktemp("frames")
    (folder / "images").mkdir()
    rng = np.random.default_rng(0)
    for i in range(FRAMES):
        frame = rng.integers(0, 256, (96, 160, 3), dtype=np.uint8)
        cv2.imwrite(str(folder / "images" / f"f{i}.png"), frame)
    args = ["bag", "make", "--images", str(folder / "images"), "--topic", "/cam/image_raw"]
    assert sleeg([*args, "--rate", "20", "--out", str(folder / "drive.mcap")]) == 0
    return folder / "drive"


def test_a_replay_records_the_points_when_asked_and_never_the_markers(
    bag, tmp_path, ros_env, tiny_model
):
    out = tmp_path / "eval"
    asked = ["-p", "publish_points:=true"]  # off at the node unless asked
    args = eval_args(bag, "/cam/image_raw", out, "--max-rate", "--no-labels")
    env = {**ros_env, "OMP_NUM_THREADS": "1"}
    proc = cli(env, *args, *node_overrides(tiny_model), *asked)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    report = json.loads((out / "report.json").read_text())
    assert report["complete"] and report["frames"]["with_all_outputs"] == FRAMES
    msgs = read_bag(out / "outputs")
    sent = {stamp(m) for m in read_bag(bag)["/cam/image_raw"]}
    points = msgs["/anomaly/points"]
    assert {stamp(m) for m in points} == sent
    assert all(m.header.frame_id == "base_link" for m in points)
    assert [f.name for f in points[0].fields] == ["x", "y", "z", "score"]
    assert "/anomaly/markers" not in msgs and {stamp(m) for m in msgs["/anomaly/obstacles"]} == sent
