"""The node on the ONNX Runtime backend (parameter onnx_model), as a real process over DDS."""

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy not installed: run scripts/setup")
pytest.importorskip("onnxruntime", reason="onnxruntime not installed: run scripts/setup")
from helpers.node import FRAME, stop
from helpers.ros_probe import Probe, start_node, startup_failure

from sleeg_core.cli import main as sleeg


@pytest.fixture(scope="module")
def graph(tiny_model, tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    args = ["--segmentor", "enet", "--weights", str(tiny_model["weights"]),
            "--head", str(tiny_model["head"]), "--device", "cpu"]  # fmt: skip
    assert sleeg(["export", *args, "--size", "64x128", "--out", str(path)]) == 0
    return str(path)


def test_the_graph_serves_every_output_with_its_threshold(ros_env, graph):
    params = [f"onnx_model:={graph}", 'head:=""', "weights:=/not/used.pth", "cpu_threads:=1",
              "inference_width:=640", "inference_height:=320"]  # fmt: skip
    proc = start_node(ros_env, *params)
    probe = Probe()
    try:
        probe.wait_for_node()
        topics = ["segmentation", "anomaly/score", "anomaly/mask", "anomaly/obstacles", "overlay"]
        msg = probe.image(FRAME, (77, 1))
        assert probe.publish_until(
            probe.image_pub, msg, lambda: all(probe.stamped(t, 77) for t in topics)
        )
        score = probe.stamped("anomaly/score", 77)[0]
        assert (score.height, score.width) == FRAME.shape[:2]
        assert probe.stamped("anomaly/obstacles", 77)[0].threshold == 0.0  # the graph's
        ids = np.frombuffer(probe.stamped("segmentation", 77)[0].data, np.uint8)
        assert ids.max() < 19
    finally:
        probe.close()
        code, out = stop(proc)
    assert code == 0, out
    assert "graph (ONNX Runtime) on cpu" in out, out
    assert "inference size 640x320 ignored: the ONNX graph runs at 128x64" in out, out
    assert "tta 'scales' ignored: the ONNX graph runs once per frame" in out, out  # the default


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (["device:=cuda"], "unset device (or unset onnx_model for PyTorch)"),
        (["device:=cuda", "compile_mode:=default"], "unset device, compile_mode"),
        (["score:=entropy"], "parameter 'score': 'entropy' is not the score of the ONNX graph"),
    ],
)
def test_pytorch_only_parameters_stop_the_start(ros_env, graph, params, message):
    out = startup_failure(ros_env, f"onnx_model:={graph}", "cpu_threads:=1", *params)
    assert message in out, out


def test_a_missing_graph_stops_the_start(ros_env, tmp_path):
    out = startup_failure(ros_env, f"onnx_model:={tmp_path / 'no.onnx'}")
    assert "parameter 'onnx_model': ONNX model not found" in out, out
