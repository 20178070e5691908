"""The ONNX Runtime backend: an exported graph called like AnomalySegmenter, on any frame size."""

import numpy as np
import pytest
import torch
from helpers.onnx import check_parity

from sleeg_core.cli import main as sleeg
from sleeg_core.common.errors import SleegError
from sleeg_core.deploy.onnx_export import export_onnx
from sleeg_core.model.inference import AnomalySegmenter, load_segmenter
from sleeg_core.segmentors import build_segmentor

pytest.importorskip("onnxruntime", reason="onnxruntime not installed: run scripts/setup")
from sleeg_core.deploy.onnx_backend import OnnxSegmenter


@pytest.mark.parametrize("mode", ["pad", "crop", "stretch"])
def test_frames_of_another_size_come_back_as_pytorch_gives_them(tmp_path, tiny_model, mode):
    path = tmp_path / "m.onnx"
    args = ["--segmentor", "enet", "--weights", str(tiny_model["weights"]),
            "--head", str(tiny_model["head"]), "--device", "cpu"]  # fmt: skip
    assert sleeg(["export", *args, "--size", "64x96", "--batch", "2", "--out", str(path)]) == 0
    onnx = OnnxSegmenter(path, threads=1)
    assert (onnx.size, onnx.batch, onnx.score_name) == ((64, 96), 2, "sleeg")
    assert onnx.threshold == 0.0 and onnx.score_stats == {"normal_p50": -1.0, "normal_p999": 1.0}
    images = torch.randint(0, 256, (3, 3, 72, 100), dtype=torch.uint8)  # 3: a padded chunk
    got = onnx(images, scores=("sleeg",), size=(64, 96), resize_mode=mode)
    model, _ = load_segmenter("enet", tiny_model["weights"], tiny_model["head"], "cpu")
    ref = model(images, scores=("sleeg",), size=(64, 96), resize_mode=mode)
    assert got.scores["sleeg"].shape == got.train_ids.shape == (3, 72, 100)
    check_parity(
        got.scores["sleeg"].numpy(), ref.scores["sleeg"].numpy(), got.train_ids.numpy(),
        ref.train_ids.numpy(), unpool=True,
    )  # fmt: skip
    only_ids = onnx(images, scores=(), resize_mode=mode)
    assert only_ids.scores == {} and torch.equal(only_ids.train_ids, got.train_ids)


def test_a_baseline_graph_in_nhwc_and_clear_errors(tmp_path):
    torch.manual_seed(0)
    model = AnomalySegmenter(build_segmentor("dabnet", None)).eval()
    path = export_onnx(model, None, tmp_path / "m.onnx", (40, 72), layout="nhwc")
    onnx = OnnxSegmenter(path)
    assert (onnx.layout, onnx.score_name, onnx.segmentor_name) == ("nhwc", "entropy", "dabnet")
    assert np.isnan(onnx.threshold) and onnx.score_stats is None
    images = torch.randint(0, 256, (1, 3, 40, 72), dtype=torch.uint8)
    got = onnx(images, scores=("entropy",))
    ref = model(images, scores=("entropy",))
    assert torch.allclose(got.scores["entropy"], ref.scores["entropy"], atol=1e-4)
    with pytest.raises(SleegError, match="computes score 'entropy' only"):
        onnx(images, scores=("sleeg",))
    with pytest.raises(SleegError, match="runs at 40x72"):
        onnx(images, scores=("entropy",), size=(64, 128))
    with pytest.raises(SleegError, match="ONNX model not found"):
        OnnxSegmenter(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a graph")
    with pytest.raises(SleegError, match="not a loadable ONNX model"):
        OnnxSegmenter(junk)
