"""The anomaly node's `tta` parameter: read at start-up, passed to AnomalySegmenter."""

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy not installed: run scripts/setup")
from helpers.node import FRAME, node_params, stop
from helpers.ros_probe import Probe, start_node, startup_failure

from sleeg_core.data.images import to_batch
from sleeg_core.model.headfile import HeadFile
from sleeg_core.model.inference import AnomalySegmenter
from sleeg_core.segmentors.enet import ENetSegmentor


@pytest.mark.parametrize("tta", ["flip", "scales"])
def test_tta_node_publishes_the_averaged_score(ros_env, tiny_model, tta):
    proc = start_node(ros_env, *node_params(tiny_model, f"tta:={tta}"))
    probe = Probe(outputs=("anomaly/score",))
    try:
        probe.wait_for_node(timeout=60)
        msg = probe.image(FRAME, (7, 1))
        assert probe.publish_until(
            probe.image_pub, msg, lambda: probe.stamped("anomaly/score", 7), timeout=60
        )
        score = np.frombuffer(probe.stamped("anomaly/score", 7)[0].data, np.float32)
    finally:
        probe.close()
        rc, out = stop(proc)
    assert rc == 0, out
    model = AnomalySegmenter.for_head_file(
        ENetSegmentor(tiny_model["weights"]), HeadFile.load(tiny_model["head"])
    ).eval()
    model.tta = tta
    eager = model(to_batch(FRAME), scores=("sleeg",), size=(64, 128), resize_mode="pad")
    np.testing.assert_allclose(score, eager.scores["sleeg"].flatten().numpy(), atol=1e-4)
    model.tta = "none"
    plain = model(to_batch(FRAME), scores=("sleeg",), size=(64, 128), resize_mode="pad")
    assert not np.allclose(score, plain.scores["sleeg"].flatten().numpy(), atol=1e-4)


def test_unknown_tta_fails_at_startup_naming_the_parameter(ros_env, tiny_model):
    out = startup_failure(ros_env, *node_params(tiny_model, "tta:=mirror"))
    assert "parameter 'tta': unknown tta 'mirror'; choose one of: none, flip, scales" in out
