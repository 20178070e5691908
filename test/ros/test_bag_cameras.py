"""`sleeg bag eval` with several image topics: one multi-camera node process, real bag files, real
DDS on loopback (a domain of this module's own), a report per camera."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy not installed: run scripts/setup")
pytest.importorskip("rosbags", reason="rosbags not installed: run scripts/setup")
from helpers.bags import cli, eval_args, node_overrides, pixels, read_bag, stamp

from sleeg_core.cli import main as sleeg
from sleeg_core.data.bags import write_frames
from sleeg_core.eval.metrics import StreamingMetrics

FRONT, LEFT = "/front/image_raw", "/left/image/compressed"  # raw 96×160, JPEG 120×200
SIZES = {FRONT: (96, 160), LEFT: (120, 200)}
FRAMES = 4


@pytest.fixture(scope="module")
def env(ros_env) -> dict[str, str]:
    """One torch thread per process (see test_bag) and this module's own DDS domain."""
    domain_id = 10 + (os.getpid() + 33) % 90
    return {**ros_env, "OMP_NUM_THREADS": "1", "ROS_DOMAIN_ID": str(domain_id)}


@pytest.fixture(scope="module")
def bag(tmp_path_factory) -> Path:
    """FRAMES frames at 20 Hz on a raw and a compressed camera topic of different sizes, both
    with the same header stamps; labels on the raw one only."""
    rng = np.random.default_rng(5)

    def frame() -> dict[str, np.ndarray]:
        (h, w), label = SIZES[FRONT], np.zeros(SIZES[FRONT], np.uint8)
        y, x = rng.integers(0, h // 2), rng.integers(0, w // 2)
        label[y : y + h // 3, x : x + w // 3] = 1
        label[:4] = 255
        images = {t: rng.integers(0, 256, (*size, 3), dtype=np.uint8) for t, size in SIZES.items()}
        return {**images, f"{FRONT}/labels": label}

    topics = {FRONT: False, f"{FRONT}/labels": False, LEFT: True}
    out = tmp_path_factory.mktemp("cameras") / "two.mcap"
    folder, n = write_frames(out, topics, (frame() for _ in range(FRAMES)), rate_hz=20.0)
    assert n == FRAMES
    return folder


def test_two_image_topics_are_replayed_through_one_node_and_reported_per_camera(
    bag, tmp_path, env, tiny_model
):
    out = tmp_path / "eval"
    args = eval_args(bag, f"front={FRONT}", out, "--image-topic", LEFT, "--max-rate")
    proc = cli(env, *args, *node_overrides(tiny_model))
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert f"camera front: {FRAMES} frames of {FRONT} (labels from {FRONT}/labels)" in stdout
    log = (out / "node.log").read_text()
    assert "2 camera(s)" in log and f"compressed on {LEFT}" in log and f"raw on {FRONT}" in log

    report = json.loads((out / "report.json").read_text())
    assert report["complete"] and report["problems"] == []
    cameras = report["cameras"]
    assert list(cameras) == ["front", "cam1"]  # unnamed: cam<position>
    assert "frames" not in report and "image_topic" not in report
    for name, topic in (("front", FRONT), ("cam1", LEFT)):
        cam = cameras[name]
        assert cam["image_topic"] == topic, name
        fr = cam["frames"]
        assert fr["in_bag"] == fr["sent"] == fr["with_all_outputs"] == FRAMES, (name, fr)
        assert fr["unmatched_outputs"] == 0, name  # the shared stamps were kept apart
        node = cam["node_status"]  # from this camera's own /diagnostics status
        assert node["frames_in"] == node["processed"] == FRAMES and node["dropped"] == 0, name
        assert node["lost_in_transport"] == 0, name
        assert len(cam["outputs_per_frame"]) == 6, name
        lat = cam["latency_ms"]["frame"]
        assert lat["n"] == FRAMES and 0 < lat["median"] <= lat["p95"] <= lat["max"], name
    assert cameras["cam1"]["label_topic"] is None and cameras["cam1"]["metrics"] is None

    # every output under its camera's topics, with that camera's stamps and frame size
    msgs = read_bag(out / "outputs")
    stamps = {stamp(m) for m in read_bag(bag)[FRONT]}
    for prefix, topic in (("/front", FRONT), ("/cam1", LEFT)):
        scores = msgs[f"{prefix}/anomaly/score"]
        assert {stamp(m) for m in scores} == stamps, prefix
        assert {(m.height, m.width) for m in scores} == {SIZES[topic]}, prefix
    names = {s.name for m in msgs["/diagnostics"] for s in m.status}
    assert names == {f"sleeg_anomaly: {FRONT}", f"sleeg_anomaly: {LEFT}"}
    assert report["outputs"]["messages"]["/cam1/overlay"] == FRAMES

    # front's metrics are those of its recorded scores against its labels (the same binned
    # accumulator: this tiny model's scores span too narrow a range to compare with exact ones)
    m = cameras["front"]["metrics"]
    labels = {stamp(x): pixels(x).copy() for x in read_bag(bag)[f"{FRONT}/labels"]}
    expected = StreamingMetrics()
    for x in msgs["/front/anomaly/score"]:
        expected.update(pixels(x).copy(), labels[stamp(x)])
    expected = expected.compute()
    assert m["frames_scored"] == FRAMES and m["label_problems"] == {}
    assert m["n_pixels"] == expected.n_pixels and m["n_anomaly"] == expected.n_anomaly
    assert (m["ap"], m["auroc"]) == pytest.approx((expected.ap, expected.auroc), abs=1e-9)

    md = (out / "report.md").read_text()
    assert "## Camera `front`" in md and "## Camera `cam1`" in md and "### Anomaly metrics" in md
    rows = (out / "frames.csv").read_text().splitlines()
    assert rows[0].startswith("camera,index,bag_stamp_ns,") and len(rows) == 2 * FRAMES + 1
    assert {row.split(",")[0] for row in rows[1:]} == {"front", "cam1"}
    for name in ("latency.png", "contact_sheet.png"):
        assert (out / name).stat().st_size > 0, name


@pytest.mark.parametrize(
    ("topics", "message"),
    [
        (["2nd=/a"], "--image-topic '2nd=/a': '2nd' is not a camera name"),
        (["=/a"], "--image-topic '=/a': '' is not a camera name"),
        (["front="], "--image-topic 'front=': no topic"),
        (["front=/a", "front=/b"], "--image-topic: camera name 'front' given twice"),
        (["/a", "left=/a"], "--image-topic: topic '/a' given twice"),
        (["cam1=/a", "/b"], "--image-topic: camera name 'cam1' given twice"),  # /b is cam1
    ],
)
def test_a_bad_image_topic_value_is_one_clear_line(bag, tmp_path, capsys, topics, message):
    args = ["bag", "eval", "--bag", str(bag), "--out", str(tmp_path / "out")]
    for topic in topics:
        args += ["--image-topic", topic]
    assert sleeg(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("sleeg bag: error: ")
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_label_topic_goes_with_a_single_image_topic(bag, tmp_path, capsys):
    args = eval_args(bag, FRONT, tmp_path / "out", "--image-topic", LEFT, "--label-topic", "/l")
    assert sleeg(args) == 2
    assert "--label-topic goes with a single --image-topic" in capsys.readouterr().err
