"""The anomaly node process under load and at its edges: overload, signals, start-up errors, the
compressed input transport."""

import shutil
import signal
import time

import cv2
import numpy as np
import pytest
import torch
import yaml
from helpers.paths import REPO, SHARED, shared_path

pytest.importorskip("rclpy", reason="rclpy not installed: run scripts/setup")
from helpers.node import FRAME, frames_in_after, jpeg, node_model, node_params, stop
from helpers.ros_probe import Probe, start_node, startup_failure
from sensor_msgs.msg import CompressedImage

from sleeg_core.data.images import to_batch
from sleeg_core.model import weights
from sleeg_core.model.shipped_heads import shipped_heads
from sleeg_ros.parameters import PARAMS


def test_overload_drops_frames_instead_of_queueing(ros_env, tiny_model):
    # native 1024×512 inference: far slower than the 50 Hz burst below
    big = np.random.default_rng(1).integers(0, 256, (512, 1024, 3), dtype=np.uint8)
    proc = start_node(ros_env, *node_params(tiny_model, "inference_width:=0"))
    probe = Probe(outputs=("segmentation", "/diagnostics"))
    try:
        probe.wait_for_node()
        sent = 40
        for i in range(sent):
            probe.image_pub.publish(probe.image(big, (10, i)))
            probe.spin(0.02)
        # the newest frame is always processed: nothing waits behind a dropped one
        newest = lambda: any(m.header.stamp.nanosec == sent - 1 for m in probe.got["segmentation"])  # noqa: E731
        assert probe.wait_for(newest, 120), "the last frame was never processed"
        status = probe.status()
        processed, dropped = int(status["processed"]), int(status["dropped"])
        assert dropped > 0 and processed < sent, status
        assert int(status["frames_in"]) == processed + dropped, status
        stamps = [m.header.stamp.nanosec for m in probe.got["segmentation"]]
        assert stamps == sorted(stamps) and len(stamps) == processed
        # the latency this bounds (a frame waits for at most one inference before its own) is
        # measured by benchmarks/node_speed.py, not judged against a clock here
    finally:
        probe.close()
        stop(proc)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_while_processing_exits_cleanly_and_quickly(ros_env, tiny_model, sig):
    """A signal in the middle of a frame stream: the inference thread is joined before the
    context goes, so no publish fails and nothing is logged as an error."""
    frame = np.random.default_rng(2).integers(0, 256, (256, 512, 3), dtype=np.uint8)
    proc = start_node(ros_env, *node_params(tiny_model, "inference_width:=0"))
    probe = Probe(outputs=("segmentation",))
    try:
        probe.wait_for_node()
        first = probe.image(frame, (30, 0))
        assert probe.publish_until(
            probe.image_pub, first, lambda: probe.stamped("segmentation", 30)
        )
        for i in range(1, 25):  # frames keep coming before and after the signal
            if i == 12:
                t0 = time.monotonic()
                proc.send_signal(sig)
            probe.image_pub.publish(probe.image(frame, (30, i)))
            probe.spin(0.05)
        out, _ = proc.communicate(timeout=10)
    finally:
        probe.close()
        if proc.poll() is None:
            stop(proc, signal.SIGKILL)
    assert time.monotonic() - t0 < 5.0
    assert proc.returncode == 0, out
    for bad in ("Traceback", "RCLError", "Failed to publish", "context is invalid", "[ERROR]"):
        assert bad not in out, out


def test_compressed_transport_decodes_jpeg_and_ignores_raw_frames(ros_env, tiny_model):
    """Alone on the domain (test_node's raw node is gone): every output and count is this node's."""
    proc = start_node(ros_env, *node_params(tiny_model, "image_transport:=compressed"))
    probe = Probe(outputs=("anomaly/score", "/diagnostics"))
    try:
        probe.wait_for_node(compressed=True)
        assert probe.image_pub.get_subscription_count() == 0  # the one input is image/compressed
        raw = [probe.image(FRAME, (60, i)) for i in range(5)]
        assert frames_in_after(probe, probe.image_pub, raw) == 0
        got = lambda: probe.stamped("anomaly/score", 61)  # noqa: E731
        assert probe.publish_until(probe.jpeg_pub, jpeg(61), got)
        score = np.frombuffer(got()[0].data, np.float32)
        corrupt = CompressedImage(format="jpeg", data=b"\xff\xd8 not a jpeg")
        before = int(probe.status()["bad_frames"])
        counted = lambda: int(probe.latest_status().get("bad_frames", before)) > before  # noqa: E731
        assert probe.publish_until(probe.jpeg_pub, corrupt, counted, timeout=30)
        status = probe.status()
    finally:
        probe.close()
        rc, out = stop(proc)
    assert rc == 0 and "input compressed on /cam/image/compressed" in out, out
    assert not probe.stamped("anomaly/score", 60)
    counts = [int(status[k]) for k in ("frames_in", "processed", "dropped", "bad_frames")]
    assert counts[1] >= 1 and counts[3] >= 1 and counts[0] == sum(counts[1:]), status
    # the node decodes the JPEG as this process does (RGB order, full size)
    rgb = cv2.imdecode(np.frombuffer(jpeg(61).data, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    model = node_model(tiny_model)
    pred = model(to_batch(rgb.copy()), scores=("sleeg",), size=(64, 128), resize_mode="pad")
    expected = pred.scores["sleeg"]  # the node's default resize mode
    np.testing.assert_allclose(score, expected.flatten().numpy(), atol=1e-4)


def test_missing_weights_fail_at_startup_naming_the_parameter(ros_env, tiny_model, tmp_path):
    missing = f"weights:={tmp_path / 'nope.pth'}"
    out = startup_failure(ros_env, missing, f"head:={tiny_model['head']}")
    assert "parameter 'weights': file not found" in out


def test_mismatched_head_fails_at_startup(ros_env, tiny_model, tmp_path):
    wrong = tmp_path / "head.pt"
    wrong.write_bytes(tiny_model["weights"].read_bytes())  # a checkpoint, not a head file
    out = startup_failure(ros_env, f"weights:={tiny_model['weights']}", f"head:={wrong}")
    assert "parameter 'head'" in out and "not a sleeg head file" in out


def test_compiled_node_publishes_what_the_eager_model_computes(ros_env, tiny_model):
    """compile_mode compiles at start-up for the inference size; outputs match eager PyTorch.
    Without test-time averaging: one network pass to compile, not three (the compiled "scales"
    averaging is test_compile's)."""
    proc = start_node(ros_env, *node_params(tiny_model, "compile_mode:=default", "tta:=none"))
    probe = Probe(outputs=("segmentation", "anomaly/score"))
    try:
        probe.wait_for_node(timeout=300)  # compiling on 1 thread takes a while
        msg = probe.image(FRAME, (5, 1))
        assert probe.publish_until(
            probe.image_pub, msg, lambda: probe.stamped("anomaly/score", 5), timeout=120
        )
        assert probe.wait_for(lambda: probe.stamped("segmentation", 5), 30)
        score = np.frombuffer(probe.stamped("anomaly/score", 5)[0].data, np.float32)
        ids = np.frombuffer(probe.stamped("segmentation", 5)[0].data, np.uint8)
    finally:
        probe.close()
        rc, out = stop(proc)
    assert rc == 0 and "compiled 'default' for 128×64" in out, out
    model = node_model(tiny_model)
    model.tta = "none"
    eager = model(to_batch(FRAME), scores=("sleeg",), size=(64, 128), resize_mode="pad")
    np.testing.assert_allclose(score, eager.scores["sleeg"].flatten().numpy(), atol=1e-4)
    assert np.mean(ids == eager.train_ids.flatten().numpy()) > 0.999
    assert torch.isfinite(eager.scores["sleeg"]).all()


def test_unknown_image_transport_fails_at_startup(ros_env, tiny_model):
    out = startup_failure(ros_env, *node_params(tiny_model, "image_transport:=theora"))
    assert "parameter 'image_transport': 'theora' is not one of raw, compressed" in out


def test_unknown_compile_mode_fails_at_startup(ros_env, tiny_model):
    out = startup_failure(ros_env, *node_params(tiny_model, "compile_mode:=fastest"))
    assert "parameter 'compile_mode': unknown compile mode 'fastest'" in out


# ---------------------------------------------------------------- weights and heads by name

SMALL_RUN = ("device:=cpu", "inference_width:=128", "inference_height:=64", "cpu_threads:=1")


def named_env(ros_env: dict[str, str], tmp_path, tiny_model) -> dict[str, str]:
    """The node's environment with an empty weights cache and a temp models folder that ships
    the tiny head as `tiny_sleeg`."""
    models = tmp_path / "models"
    models.mkdir()
    shutil.copyfile(tiny_model["head"], models / "tiny_sleeg.pt")
    cache = str(tmp_path / "cache")
    return {
        **ros_env,
        "SLEEG_CACHE": cache,
        "SLEEG_MODELS": str(models),
        "SLEEG_SHARED": str(SHARED),
    }


def publishes_a_score(proc) -> str:
    """Send frames until an anomaly score arrives, then stop the node; its log."""
    probe = Probe(outputs=("anomaly/score",))
    try:
        probe.wait_for_node(timeout=120)
        msg = probe.image(FRAME, (7, 0))
        got = lambda: probe.stamped("anomaly/score", 7)  # noqa: E731
        assert probe.publish_until(probe.image_pub, msg, got, timeout=120)
        score = np.frombuffer(got()[0].data, np.float32)
        assert score.size == FRAME.shape[0] * FRAME.shape[1] and np.isfinite(score).all()
    finally:
        probe.close()
        rc, out = stop(proc)
    assert rc == 0, out
    return out


def test_defaults_are_the_known_enet_weights_and_the_shipped_enet_head():
    file = yaml.safe_load((REPO / "config" / "anomaly.yaml").read_text())
    params = file["sleeg_anomaly"]["ros__parameters"]
    assert {k: str(v) for k, v in params.items()} == {p.name: str(p.default) for p in PARAMS}
    assert params["weights"] == "enet_cityscapes" and "enet_cityscapes" in weights.KNOWN_WEIGHTS
    assert params["head"] == "enet_cityscapes_sleeg" and params["segmentor"] == ""


def test_known_weights_from_shared_and_a_shipped_head_by_name_publish_a_score(
    ros_env, tiny_model, tmp_path
):
    shared_path("weights", "enet_cityscapes", "enet.pth")
    env = named_env(ros_env, tmp_path, tiny_model)
    proc = start_node(env, "weights:=enet_cityscapes", "head:=tiny_sleeg", *SMALL_RUN)
    out = publishes_a_score(proc)
    assert "ready: enet on cpu" in out  # the segmentor taken from the head
    cached = tmp_path / "cache" / "weights" / "enet.pth"
    assert weights.sha256_of(cached) == weights.known("enet_cityscapes").sha256


def test_no_arguments_run_the_shipped_enet_head(ros_env, tmp_path, monkeypatch):
    """config/anomaly.yaml alone (as `ros2 launch` without arguments): the known ENet weights and
    the shipped models/enet_cityscapes_sleeg.pt, no training and no paths."""
    env = {**ros_env, "SLEEG_CACHE": str(tmp_path / "cache"), "SLEEG_SHARED": str(SHARED)}
    env.pop("SLEEG_MODELS", None)
    monkeypatch.delenv("SLEEG_MODELS", raising=False)
    assert "enet_cityscapes_sleeg" in shipped_heads()
    shared_path("weights", "enet_cityscapes", "enet.pth")  # no downloads in tests
    assert "ready: enet on cpu" in publishes_a_score(start_node(env, *SMALL_RUN))


def test_the_shipped_dabnet_head_by_name_runs_in_the_node(ros_env, tmp_path, monkeypatch):
    """DABNet's default head and known weights by name: the node takes the segmentor from the
    head and publishes a score (models/README.md)."""
    env = {**ros_env, "SLEEG_CACHE": str(tmp_path / "cache"), "SLEEG_SHARED": str(SHARED)}
    env.pop("SLEEG_MODELS", None)
    monkeypatch.delenv("SLEEG_MODELS", raising=False)
    assert "dabnet_cityscapes_sleeg" in shipped_heads()
    shared_path("weights", "dabnet_cityscapes", "DABNet_cityscapes.pth")  # no downloads in tests
    args = ("weights:=dabnet_cityscapes", "head:=dabnet_cityscapes_sleeg", *SMALL_RUN)
    assert "ready: dabnet on cpu" in publishes_a_score(start_node(env, *args))


def test_a_missing_shipped_head_fails_at_startup_naming_it(ros_env, tiny_model, tmp_path):
    env = named_env(ros_env, tmp_path, tiny_model)
    out = startup_failure(env, f"weights:={tiny_model['weights']}", "head:=enet_nowhere_sleeg")
    assert "parameter 'head': no shipped head 'enet_nowhere_sleeg'" in out
    assert "tiny_sleeg)" in out  # the heads that are there


def test_a_segmentor_other_than_the_known_weights_fails_at_startup(ros_env, tiny_model, tmp_path):
    env = named_env(ros_env, tmp_path, tiny_model)
    params = ("segmentor:=espnet", "weights:=enet_cityscapes", 'head:=""', "score:=entropy")
    out = startup_failure(env, *params)
    assert (
        "parameter 'segmentor': segmentors disagree: segmentor → 'espnet', "
        "weights 'enet_cityscapes' → 'enet'"
    ) in out
    assert not (tmp_path / "cache").exists()  # refused before any fetch
