"""The node with `head: <an ensemble file>` as a real process over DDS: it configures, publishes
the ensemble's score and masks it at the ensemble file's threshold; weights other than the
first member's stop it at start-up, naming the parameter."""

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy not installed: run scripts/setup")
from helpers.ensembles import member, tiny_head, write_ensemble
from helpers.node import FRAME, node_params, stop
from helpers.ros_probe import Probe, start_node, startup_failure

from sleeg_core.data.images import to_batch
from sleeg_core.model.ensemble_file import EnsembleFile
from sleeg_core.model.inference import load_segmenter
from sleeg_core.model.tta import NODE_TTA

CLEANUP_OFF = ("mask_open_px:=0", "min_blob_area:=0", "min_blob_area_near:=0.0")


def expected_score(path) -> np.ndarray:
    """What the ensemble computes for FRAME in this process, as the node runs it."""
    model, _ = load_segmenter(None, None, path, "cpu")
    model.tta = NODE_TTA
    pred = model(to_batch(FRAME.copy()), scores=("sleeg",), size=(64, 128), resize_mode="pad")
    return pred.scores["sleeg"].flatten().numpy()


@pytest.fixture(scope="module")
def ensemble(tiny_model, tmp_path_factory):
    """Two tiny heads on the tiny model's ENet weights, as one ensemble file whose threshold is
    the median of FRAME's score."""
    folder = tmp_path_factory.mktemp("ensemble")
    heads = [(str(tiny_head(folder, n)), w) for n, w in (("a", 2.0), ("b", 1.0))]
    path = write_ensemble(folder / "pair.yaml", member(tiny_model["weights"], *heads))
    median = float(np.median(expected_score(path)))
    return write_ensemble(path, member(tiny_model["weights"], *heads), threshold=median)


def params(tiny_model, ensemble, *extra: str) -> list[str]:
    return [*(p for p in node_params(tiny_model) if not p.startswith("head:=")),
            f"head:={ensemble}", *extra]  # fmt: skip


def test_node_publishes_the_ensembles_score_and_mask(ros_env, tiny_model, ensemble):
    proc = start_node(ros_env, *params(tiny_model, ensemble, *CLEANUP_OFF))
    probe = Probe()
    try:
        probe.wait_for_node()
        assert probe.lifecycle_state() == "active"
        msg = probe.image(FRAME, (31, 0))
        topics = ("anomaly/score", "anomaly/mask", "anomaly/obstacles")
        assert probe.publish_until(
            probe.image_pub, msg, lambda: all(probe.stamped(t, 31) for t in topics)
        )
        score = np.frombuffer(probe.stamped("anomaly/score", 31)[0].data, np.float32)
        mask = np.frombuffer(probe.stamped("anomaly/mask", 31)[0].data, np.uint8)
        obstacles = probe.stamped("anomaly/obstacles", 31)[0]
    finally:
        probe.close()
        rc, out = stop(proc)
    assert rc == 0 and "ready: ensemble (enet)" in out, out
    expected = expected_score(ensemble)
    np.testing.assert_allclose(score, expected, atol=1e-4)
    threshold = EnsembleFile.load(ensemble).threshold  # the mask's, with no clean-up
    assert obstacles.threshold == pytest.approx(threshold)
    clear = np.abs(expected - threshold) > 1e-3  # pixels not on the threshold itself
    np.testing.assert_array_equal(mask[clear] > 0, expected[clear] >= threshold)
    assert 0.4 < np.count_nonzero(mask) / mask.size < 0.6


def test_weights_other_than_the_first_members_fail_at_startup(
    ros_env, tiny_model, ensemble, tmp_path
):
    other = tmp_path / "other.pth"
    other.write_bytes(tiny_model["weights"].read_bytes())  # the same bytes, another file
    extra = [p for p in params(tiny_model, ensemble) if not p.startswith("weights:=")]
    out = startup_failure(ros_env, *extra, f"weights:={other}")
    assert "parameter 'weights'" in out and "are not the first member's" in out
