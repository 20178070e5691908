"""The anomaly node process under load and at its edges: overload, signals, start-up errors."""

import signal
import time

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy not installed: run scripts/setup")
from ros_probe import Probe, start_node
from test_node import FRAME, node_params, stop


def test_overload_drops_frames_instead_of_queueing(ros_env, tiny_model):
    # native 1024×512 inference: far slower than the 50 Hz burst below
    big = np.random.default_rng(1).integers(0, 256, (512, 1024, 3), dtype=np.uint8)
    proc = start_node(ros_env, *node_params(tiny_model, "inference_width:=0"))
    probe = Probe(outputs=("segmentation", "status"))
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
        # bounded latency: a frame waits for at most one inference before its own
        assert float(status["latency_ms_p95"]) < 2.5 * float(status["inference_ms_median"]) + 300
    finally:
        probe.close()
        stop(proc)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_exits_cleanly_and_quickly(ros_env, tiny_model, sig):
    proc = start_node(ros_env, *node_params(tiny_model))
    probe = Probe(outputs=())
    try:
        probe.wait_for_node()
    finally:
        probe.close()
    t0 = time.monotonic()
    rc, out = stop(proc, sig)
    assert time.monotonic() - t0 < 5.0
    assert rc == 0, out


def test_missing_weights_fail_at_startup_naming_the_parameter(ros_env, tiny_model, tmp_path):
    proc = start_node(ros_env, f"weights:={tmp_path / 'nope.pth'}", f"head:={tiny_model['head']}")
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "parameter 'weights': file not found" in out
    assert "Traceback" not in out


def test_mismatched_head_fails_at_startup(ros_env, tiny_model, tmp_path):
    wrong = tmp_path / "head.pt"
    wrong.write_bytes(tiny_model["weights"].read_bytes())  # a checkpoint, not a head file
    proc = start_node(ros_env, f"weights:={tiny_model['weights']}", f"head:={wrong}")
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "parameter 'head'" in out and "not a sleeg head file" in out


def test_compiled_node_publishes_what_the_eager_model_computes(ros_env, tiny_model):
    """compile_mode compiles at start-up for the inference size; outputs match eager PyTorch."""
    import torch

    from sleeg_core.headfile import HeadFile
    from sleeg_core.images import to_batch
    from sleeg_core.inference import AnomalySegmenter
    from sleeg_core.segmentors.enet import ENetSegmentor

    proc = start_node(ros_env, *node_params(tiny_model, "compile_mode:=default"))
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
    model = AnomalySegmenter.for_head_file(
        ENetSegmentor(tiny_model["weights"]), HeadFile.load(tiny_model["head"])
    ).eval()
    eager = model(to_batch(FRAME), scores=("sleeg",), size=(64, 128))
    np.testing.assert_allclose(score, eager.scores["sleeg"].flatten().numpy(), atol=1e-4)
    assert np.mean(ids == eager.train_ids.flatten().numpy()) > 0.999
    assert torch.isfinite(eager.scores["sleeg"]).all()


def test_unknown_compile_mode_fails_at_startup(ros_env, tiny_model):
    proc = start_node(ros_env, *node_params(tiny_model, "compile_mode:=fastest"))
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "parameter 'compile_mode': unknown compile mode 'fastest'" in out
