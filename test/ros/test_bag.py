"""`sleeg bag make | info | eval` with real bag files, the real node process and real DDS."""

import json
import os
import re
import shutil
import signal
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy not installed: run scripts/setup")
pytest.importorskip("rosbags", reason="rosbags not installed: run scripts/setup")
from helpers.bags import cli, eval_args, node_overrides, pixels, read_bag, stamp
from helpers.node import node_params, stop
from helpers.paths import REPO
from helpers.ros_probe import start_node
from rosbags.rosbag2 import Writer

from sleeg_core.cli import main as sleeg
from sleeg_core.data.bags import TYPESTORE, image_message, mcap_complete_end
from sleeg_core.data.image_msgs import BYTES_PER_PIXEL
from sleeg_core.eval.components import ComponentMetrics
from sleeg_core.eval.metrics import exact_metrics

START_S = 1_700_000_000


def write_frames(folder: Path, n: int, size: tuple[int, int] = (96, 160), seed: int = 0) -> Path:
    """n noisy frames in folder/images and label masks (a box of 1s, a void top row band) in
    folder/labels, as PNG."""
    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True)
    (folder / "labels").mkdir()
    h, w = size
    for i in range(n):
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        label = np.zeros((h, w), np.uint8)
        y, x = rng.integers(0, h // 2), rng.integers(0, w // 2)
        label[y : y + h // 3, x : x + w // 3] = 1
        label[:4] = 255
        cv2.imwrite(str(folder / "images" / f"f{i:02d}.png"), image)
        cv2.imwrite(str(folder / "labels" / f"f{i:02d}_mask.png"), label)
    return folder


@pytest.fixture(scope="module")
def env(ros_env) -> dict[str, str]:
    """One torch thread per process: two spinning threads on a shared 2-core machine make the
    tiny model's inference ~100× slower."""
    return {**ros_env, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def bag(tmp_path_factory) -> Path:
    """6 frames with labels at 20 Hz on /cam/image_raw, made by `sleeg bag make`."""
    folder = write_frames(tmp_path_factory.mktemp("frames"), 6)
    out = folder / "drive.mcap"
    args = ["bag", "make", "--images", str(folder / "images"), "--labels", str(folder / "labels")]
    assert sleeg([*args, "--topic", "/cam/image_raw", "--rate", "20", "--out", str(out)]) == 0
    return folder / "drive"


@pytest.fixture(scope="module")
def attached(env, tiny_model):
    """A running node in namespace /att, reading /att/image, for `--attach` runs."""
    params = node_params(tiny_model, "threshold:=0.0", "reliable_input:=true")
    proc = start_node(env, *params, remap="__ns:=/att")
    yield proc
    stop(proc)


# ---------------------------------------------------------------- make and info


def test_make_writes_a_rosbag2_folder_with_frames_and_labels(bag):
    assert sorted(p.name for p in bag.iterdir()) == ["drive.mcap", "metadata.yaml"]
    msgs = read_bag(bag)
    assert sorted(msgs) == ["/cam/image_raw", "/cam/image_raw/labels"]
    frames, labels = msgs["/cam/image_raw"], msgs["/cam/image_raw/labels"]
    assert [stamp(m) for m in frames] == [stamp(m) for m in labels]
    assert [stamp(m) for m in frames] == [START_S * 10**9 + i * 50_000_000 for i in range(6)]
    folder = bag.parent
    first = cv2.imread(str(folder / "images" / "f00.png"))[..., ::-1]
    assert frames[0].encoding == "rgb8" and np.array_equal(pixels(frames[0]), first)
    assert labels[0].encoding == "mono8"
    label = cv2.imread(str(folder / "labels" / "f00_mask.png"), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(pixels(labels[0]), label)


def test_make_from_a_road_anomaly_dataset_compressed_into_sqlite(tmp_path):
    frames = tmp_path / "ra" / "frames"
    frames.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for name in ("a", "b"):
        cv2.imwrite(str(frames / f"{name}.jpg"), rng.integers(0, 256, (64, 96, 3), dtype=np.uint8))
        (frames / f"{name}.labels").mkdir()
        raw = np.zeros((64, 96), np.uint8)
        raw[10:30, 20:50] = 2  # Road Anomaly: 2 is anomaly
        cv2.imwrite(str(frames / f"{name}.labels" / "labels_semantic.png"), raw)
    args = ["bag", "make", "--dataset", str(tmp_path / "ra"), "--topic", "/cam", "--compressed"]
    assert sleeg([*args, "--out", str(tmp_path / "drive.db3")]) == 0
    assert sorted(p.name for p in (tmp_path / "drive").iterdir()) == ["drive.db3", "metadata.yaml"]
    msgs = read_bag(tmp_path / "drive")
    assert [m.format for m in msgs["/cam/compressed"]] == ["jpeg", "jpeg"]
    assert set(np.unique(pixels(msgs["/cam/labels"][0]))) == {0, 1}


def test_make_refuses_a_missing_label_and_leaves_no_partial_bag(tmp_path, capsys):
    folder = write_frames(tmp_path, 2)
    (folder / "labels" / "f01_mask.png").unlink()
    args = ["bag", "make", "--images", str(folder / "images"), "--labels", str(folder / "labels")]
    assert sleeg([*args, "--out", str(tmp_path / "x.mcap")]) == 2
    assert "no label for" in capsys.readouterr().err and not (tmp_path / "x").exists()
    bad = np.full((96, 160), 7, np.uint8)  # not 0/1/255: fails while writing frame 0
    cv2.imwrite(str(folder / "labels" / "f01_mask.png"), bad)
    cv2.imwrite(str(folder / "labels" / "f00_mask.png"), bad)
    assert sleeg([*args, "--out", str(tmp_path / "x.mcap")]) == 2
    assert "raw label values [7]" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_info_lists_topics_counts_and_time_span(bag, capsys):
    assert sleeg(["bag", "info", str(bag)]) == 0
    out = capsys.readouterr().out
    assert "Storage id:        mcap" in out and "Messages:          12" in out
    assert "Duration:          0.250000000s" in out
    assert f"({START_S}.000000000)" in out and f"({START_S}.250000000)" in out
    for topic in ("/cam/image_raw", "/cam/image_raw/labels"):
        assert f"Topic: {topic} | Type: sensor_msgs/msg/Image | Count: 6 |" in out


def cut_bag(tmp_path: Path, fraction: float) -> Path:
    """A 12-frame bag (several MCAP chunks) whose file is cut short, as a killed recorder
    leaves it."""
    folder = write_frames(tmp_path / "src", 12, size=(240, 320), seed=3)
    args = ["bag", "make", "--images", str(folder / "images"), "--labels", str(folder / "labels")]
    assert sleeg([*args, "--topic", "/att/image", "--out", str(tmp_path / "cut.mcap")]) == 0
    file = tmp_path / "cut" / "cut.mcap"
    with file.open("r+b") as f:
        f.truncate(int(file.stat().st_size * fraction))
    return tmp_path / "cut"


def test_info_of_a_cut_short_bag_says_how_much_it_read(tmp_path, capsys):
    bag = cut_bag(tmp_path, 0.7)
    assert sleeg(["bag", "info", str(bag)]) == 0
    out = capsys.readouterr().out
    assert "Warning:" in out and "is cut short or damaged" in out
    assert f"in the first {mcap_complete_end(bag / 'cut.mcap'):,} of" in out
    count = int(re.search(r"Topic: /att/image \|.*Count: (\d+)", out).group(1))
    assert 0 < count < 12


def test_a_bag_that_is_not_a_bag_gives_one_clear_line(tmp_path, capsys):
    junk = tmp_path / "junk.mcap"
    junk.write_bytes(b"definitely not an mcap file")
    assert sleeg(["bag", "info", str(junk)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sleeg bag: error: cannot open bag") and "Traceback" not in err


# ---------------------------------------------------------------- eval


def test_eval_missing_topic_lists_the_bag_topics(bag, tmp_path, capsys):
    assert sleeg(eval_args(bag, "/nope", tmp_path / "out")) == 2
    err = capsys.readouterr().err
    assert "has no topic '/nope'; topics: /cam/image_raw [sensor_msgs/msg/Image]" in err
    assert "/cam/image_raw/labels [sensor_msgs/msg/Image]" in err
    args = eval_args(bag, "/cam/image_raw", tmp_path / "out", "--label-topic", "/nope")
    assert sleeg(args) == 2 and "has no topic '/nope'" in capsys.readouterr().err


def test_eval_with_a_started_node_reports_counts_latency_and_metrics(
    bag, tmp_path, env, tiny_model
):
    out = tmp_path / "eval"
    args = eval_args(bag, "/cam/image_raw", out, "--max-rate", *node_overrides(tiny_model))
    proc = cli(env, *args, "--params", str(REPO / "config/anomaly.yaml"))
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    report = json.loads((out / "report.json").read_text())
    assert report["complete"] and report["label_topic"] == "/cam/image_raw/labels"
    fr = report["frames"]
    assert fr["in_bag"] == fr["sent"] == fr["with_all_outputs"] == 6 and fr["skipped"] == 0
    node = report["node_status"]
    assert node["frames_in"] == node["processed"] == 6 and node["dropped"] == 0
    assert node["lost_in_transport"] == 0 and report["node"]["exit_code"] == 0
    assert len(report["node"]["outputs_per_frame"]) == 6  # threshold set: mask, overlay, …
    lat = report["latency_ms"]["frame"]
    assert lat["n"] == 6 and 0 < lat["median"] <= lat["p95"] <= lat["max"]
    for name in ("report.md", "latency.png", "contact_sheet.png", "node.log"):
        assert (out / name).stat().st_size > 0, name
    rows = (out / "frames.csv").read_text().splitlines()
    assert rows[0].startswith("index,bag_stamp_ns,sent_stamp_ns,sent_s,frame_ms,segmentation,")
    assert len(rows) == 7 and all(row.count(",") == 10 for row in rows)
    assert "| sent | 6 |" in stdout

    # every output decodes, with the input's stamps; the custom message type too
    msgs = read_bag(out / "outputs" / "outputs.mcap")
    sent = {stamp(m) for m in read_bag(bag)["/cam/image_raw"]}
    for topic in ("/segmentation", "/segmentation/color", "/anomaly/score", "/anomaly/mask",
                  "/anomaly/obstacles", "/overlay"):  # fmt: skip
        assert {stamp(m) for m in msgs[topic]} == sent, topic
    obstacles = msgs["/anomaly/obstacles"][0]
    assert obstacles.__msgtype__ == "sleeg_ros/msg/AnomalyObstacleArray"
    assert obstacles.threshold == 0.0 and 0.0 <= obstacles.anomalous_fraction <= 1.0
    assert all(o.pixel_area > 0 for o in obstacles.obstacles)
    assert msgs["/diagnostics"][0].status[0].name == "sleeg_anomaly: /cam/image_raw"

    # the metrics are those of the recorded scores against the bag's labels
    labels = {stamp(m): pixels(m) for m in read_bag(bag)["/cam/image_raw/labels"]}
    scores = {stamp(m): pixels(m).copy() for m in msgs["/anomaly/score"]}
    exact = exact_metrics([scores[s] for s in sorted(scores)], [labels[s] for s in sorted(scores)])
    m = report["metrics"]
    assert m["frames_scored"] == 6 and m["n_pixels"] == exact.n_pixels
    assert m["ap"] == pytest.approx(exact.ap, abs=1e-3)
    assert m["auroc"] == pytest.approx(exact.auroc, abs=1e-3)

    # the mask figures are those of the published masks against the same labels
    masks = ComponentMetrics()
    for s in sorted(labels):
        masks.update(pixels(next(x for x in msgs["/anomaly/mask"] if stamp(x) == s)), labels[s])
    want = masks.compute().as_dict()
    assert m["mask"]["images"] == 6 and m["mask"].keys() == want.keys()
    for key, value in want.items():
        assert m["mask"][key] == (value if value is None else pytest.approx(value)), key
    assert "The published anomaly/mask (6 frames)" in (out / "report.md").read_text()


def test_eval_attached_at_recorded_rate_skips_an_unsupported_frame(tmp_path, env, attached):
    folder = tmp_path / "odd"
    rng = np.random.default_rng(2)
    with Writer(folder, version=9) as writer:
        conn = writer.add_connection("/att/image", "sensor_msgs/msg/Image", typestore=TYPESTORE)
        for i in range(5):
            t = START_S * 10**9 + i * 100_000_000  # 10 Hz
            msg = image_message(rng.integers(0, 256, (96, 160, 3), dtype=np.uint8), t, "c", False)
            if i == 2:
                msg.encoding = "32FC1"  # a depth image on the camera topic
            writer.write(conn, t, TYPESTORE.serialize_cdr(msg, conn.msgtype))
    out = tmp_path / "eval"
    args = eval_args(folder, "/att/image", out, "--attach", "--namespace", "/att", "--rate", "2")
    proc = cli(env, *args)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    report = json.loads((out / "report.json").read_text())
    fr = report["frames"]
    assert (fr["read"], fr["skipped"], fr["sent"]) == (5, 1, 4)
    assert list(fr["skipped_reasons"]) == [
        f"unsupported encoding '32FC1' (supported: {', '.join(BYTES_PER_PIXEL)})"
    ]
    assert report["mode"] == "recorded rate x2" and report["metrics"] is None
    assert not report["node"]["started"] and report["node"]["pid"] is None
    assert report["throughput"]["sent_fps"] == pytest.approx(20 * 4 / 5, rel=0.3)  # a gap at 2
    assert report["node_status"]["frames_in"] == 4
    assert len(read_bag(out / "outputs")["/att/anomaly/score"]) == fr["with_outputs"] > 0


def test_eval_of_a_compressed_topic_starts_a_compressed_node_and_finds_the_labels(
    tmp_path, env, tiny_model
):
    folder = write_frames(tmp_path / "src", 3)
    args = ["bag", "make", "--images", str(folder / "images"), "--labels", str(folder / "labels")]
    assert (
        sleeg([*args, "--topic", "/cam/image", "--compressed", "--out", str(tmp_path / "j.mcap")])
        == 0
    )
    out = tmp_path / "eval"
    args = eval_args(tmp_path / "j", "/cam/image/compressed", out, *node_overrides(tiny_model))
    proc = cli(env, *args, "--max-rate", "--no-record")
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    log = (out / "node.log").read_text()
    assert "input compressed on /cam/image/compressed" in log  # the bag's transport
    report = json.loads((out / "report.json").read_text())
    assert report["label_topic"] == "/cam/image/labels"  # <base topic>/labels by default
    assert report["frames"]["with_all_outputs"] == 3 and report["metrics"]["frames_scored"] == 3
    assert report["node_status"]["frames_in"] == report["node_status"]["processed"] == 3
    assert not (out / "outputs").exists() and report["outputs"]["bag"] is None
    assert report["outputs"]["messages"]["anomaly/score"] >= 3  # received and scored
    assert "received (not recorded)" in (out / "report.md").read_text()


def test_eval_of_a_cut_short_bag_keeps_a_partial_report(tmp_path, env, attached):
    bag = cut_bag(tmp_path, 0.7)
    out = tmp_path / "eval"
    proc = cli(env, *eval_args(bag, "/att/image", out, "--attach", "--namespace", "/att",
                                  "--max-rate"))  # fmt: skip
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 2
    assert "incomplete run: damaged bag:" in stderr and "cut short" in stderr
    assert "Traceback" not in stderr
    report = json.loads((out / "report.json").read_text())
    assert not report["complete"] and "cut short" in report["bag_note"]
    fr = report["frames"]
    assert (
        0 < fr["read"] == fr["in_bag"] < 12 and fr["sent"] == fr["with_all_outputs"] == fr["read"]
    )
    assert report["metrics"]["frames_scored"] >= fr["sent"] - 1  # the last label may be cut off
    assert len(read_bag(out / "outputs")["/att/anomaly/obstacles"]) == fr["sent"]


def test_eval_reports_a_node_killed_mid_replay(tmp_path, env, tiny_model):
    folder = write_frames(tmp_path / "src", 30)
    args = ["bag", "make", "--images", str(folder / "images"), "--topic", "/cam/image_raw"]
    assert sleeg([*args, "--rate", "10", "--out", str(tmp_path / "long.mcap")]) == 0
    out = tmp_path / "eval"
    proc = cli(env, *eval_args(tmp_path / "long", "/cam/image_raw", out,
                                   *node_overrides(tiny_model)))  # fmt: skip
    pid = None
    deadline = time.monotonic() + 240
    for line in proc.stdout:  # the node's pid, then the first progress line
        assert time.monotonic() < deadline
        if found := re.search(r"started anomaly_node \(pid (\d+)\)", line):
            pid = int(found.group(1))
        if "frames read" in line:
            break
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 2, stderr
    assert "the node process was killed by signal 9" in stderr and "partial report" in stderr
    report = json.loads((out / "report.json").read_text())
    assert report["problems"] == ["the node process was killed by signal 9"]
    assert report["node"]["exit_code"] == -9
    fr = report["frames"]
    assert 3 <= fr["sent"] < 30 and fr["read"] < 30
    assert len(read_bag(out / "outputs").get("/anomaly/score", [])) == fr["with_outputs"]


# ---------------------------------------------------------------- sleeg eval on a bag


def test_sleeg_eval_reads_a_labelled_bag_like_its_folder(bag, tmp_path, tmp_model_args):
    folder = tmp_path / "folder"
    shutil.copytree(bag.parent / "images", folder / "images")
    shutil.copytree(bag.parent / "labels", folder / "labels_masks")
    results = {}
    for name, path in (("bag", bag), ("folder", folder)):
        out = tmp_path / name
        args = ["eval", *tmp_model_args, "--dataset", f"{name}={path}", "--out", str(out)]
        assert sleeg([*args, "--scores", "entropy,sleeg"]) == 0
        results[name] = json.loads((out / "results.json").read_text())["datasets"][name]
    assert results["bag"] == results["folder"]
    assert results["bag"]["n_images"] == 6
