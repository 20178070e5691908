"""`sleeg export`: one ONNX graph that ONNX Runtime runs like the PyTorch AnomalySegmenter.

Parity tolerances: helpers/onnx.py.
"""

import json

import cv2
import numpy as np
import pytest
import torch
from helpers.onnx import check_parity
from helpers.paths import shared_path
from torch import nn

from sleeg_core.cli import main as sleeg
from sleeg_core.common.errors import SleegError
from sleeg_core.data.images import read_rgb
from sleeg_core.deploy.onnx_export import (
    _WindowMaxPool,
    _WindowMaxUnpool,
    export_friendly,
    export_onnx,
    parse_size,
)
from sleeg_core.model.head import HeadConfig, OoDHead
from sleeg_core.model.headfile import HeadFile
from sleeg_core.model.inference import AnomalySegmenter, load_segmenter
from sleeg_core.segmentors import build_segmentor

REAL_FRAMES = (
    "frankfurt_000000_000294_leftImg8bit.png",
    "000008.png",
    "n015-2018-07-24-11-22-45+0800__CAM_FRONT__1532402927612460.jpg",
)


@pytest.fixture(scope="module")
def ort():
    pytest.importorskip("onnx", reason="onnx not installed: run scripts/setup")
    return pytest.importorskip("onnxruntime", reason="onnxruntime not installed: run scripts/setup")


def run_onnx(ort, path, images: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Outputs by name and the metadata of an exported graph, on the CPU."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    outputs = dict(zip(names, session.run(None, {"images": images}), strict=True))
    return outputs, session.get_modelmeta().custom_metadata_map


def random_head_file(
    segmentor: str, channels: int, threshold: float, branches: tuple = ()
) -> HeadFile:
    """A head with random weights and BatchNorm statistics, as a head file."""
    torch.manual_seed(0)
    config = HeadConfig(in_channels=channels, width=16, depth=2, dropout=0.1, branches=branches)
    head = OoDHead.from_config(config)
    for bn in (m for m in head.modules() if isinstance(m, nn.BatchNorm2d)):
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2.0)
    return HeadFile(
        head_config=config,
        state_dict=head.state_dict(),
        segmentor=segmentor,
        segmentor_options={},
        feature_channels=channels,
        lam=0.5,
        threshold=threshold,
        threshold_rule="FPR 5% on normal pixels",
        score_stats={"normal_p50": -3.5, "normal_p95": threshold, "normal_p999": -0.5},
    )


def test_window_pooling_is_torch_max_pool_and_unpool_even_with_ties():
    torch.manual_seed(0)
    x = torch.randint(0, 3, (2, 5, 12, 16)).float()  # many equal values in every window
    for images in (x, x.contiguous(memory_format=torch.channels_last)):
        values, indices = nn.MaxPool2d(2, 2, return_indices=True)(images)
        window_values, positions = _WindowMaxPool()(images)
        assert torch.equal(window_values, values)
        y = torch.randn_like(values)
        size = images.shape[-2:]
        expected = nn.MaxUnpool2d(2, 2)(y, indices, output_size=size)
        assert torch.equal(_WindowMaxUnpool()(y, positions, output_size=size), expected)
    odd = x[..., :11, :15]  # floor mode: the last row and column are dropped
    assert torch.equal(_WindowMaxPool()(odd)[0], nn.MaxPool2d(2, 2)(odd))
    with pytest.raises(SleegError, match="twice the size"):
        _WindowMaxUnpool()(values, positions, output_size=(13, 16))


def test_export_friendly_copy_computes_exactly_what_the_model_does():
    torch.manual_seed(0)
    model = AnomalySegmenter(build_segmentor("enet", None), OoDHead(128, width=8)).eval()
    friendly = export_friendly(model)
    kinds = {type(m) for m in friendly.modules()}
    assert nn.MaxUnpool2d not in kinds and nn.PReLU not in kinds and _WindowMaxUnpool in kinds
    assert any(isinstance(m, nn.MaxUnpool2d) for m in model.modules())  # the original is kept
    for size in ((64, 96), (45, 70)):  # the second is padded inside the segmentor
        images = torch.randint(0, 256, (2, 3, *size), dtype=torch.uint8)
        ref = model(images, scores=("sleeg",), keep_logits=True)
        out = friendly(images, scores=("sleeg",), keep_logits=True)
        assert torch.equal(out.scores["sleeg"], ref.scores["sleeg"])
        assert torch.equal(out.logits, ref.logits)


def test_tiny_model_exports_with_mask_and_metadata_and_runs_like_pytorch(
    tmp_path, tiny_model, tmp_model_args, ort
):
    out = tmp_path / "model.onnx"
    args = ["--size", "64x96", "--batch", "2", "--out", str(out)]
    assert sleeg(["export", *tmp_model_args, *args]) == 0
    images = torch.randint(0, 256, (2, 3, 64, 96), dtype=torch.uint8)
    outputs, meta = run_onnx(ort, out, images.numpy())
    assert sorted(outputs) == ["mask", "score", "train_ids"]
    assert all(v.shape == (2, 64, 96) for v in outputs.values())
    model, _ = load_segmenter("enet", tiny_model["weights"], tiny_model["head"], "cpu")
    ref = model(images, scores=("sleeg",))
    ref_score = ref.scores["sleeg"].numpy()
    check_parity(outputs["score"], ref_score, outputs["train_ids"], ref.train_ids.numpy(), True)
    clear = np.abs(ref_score) > 1e-3  # threshold 0: the mask is exact away from it
    assert np.array_equal(outputs["mask"][clear], (ref_score >= 0)[clear])
    assert meta["format"] == "sleeg-onnx-1" and meta["segmentor"] == "enet"
    assert meta["score"] == "sleeg" and float(meta["lam"]) == 0.5
    assert float(meta["threshold"]) == 0.0 and meta["threshold_rule"] == "test"
    assert json.loads(meta["score_stats"]) == {"normal_p50": -1.0, "normal_p999": 1.0}
    assert meta["input"] == "images uint8 RGB nchw 2x3x64x96"
    assert meta["outputs"] == "score,train_ids,mask" and meta["mask"] == "score >= 0.0"
    assert meta["weights"] == "enet_random.pth" and meta["head"] == "head.pt"
    assert len(json.loads(meta["class_names"])) == 19


def test_nhwc_input_and_a_baseline_score_without_head(tmp_path, ort):
    torch.manual_seed(0)
    model = AnomalySegmenter(build_segmentor("dabnet", None)).eval()
    path = export_onnx(model, None, tmp_path / "m.onnx", (40, 72), layout="nhwc")
    images = torch.randint(0, 256, (1, 40, 72, 3), dtype=torch.uint8)
    outputs, meta = run_onnx(ort, path, images.numpy())
    assert sorted(outputs) == ["score", "train_ids"]
    ref = model(images.permute(0, 3, 1, 2), scores=("entropy",))
    check_parity(
        outputs["score"], ref.scores["entropy"].numpy(), outputs["train_ids"],
        ref.train_ids.numpy(), unpool=False,
    )  # fmt: skip
    assert meta["score"] == "entropy" and meta["segmentor"] == "dabnet"
    assert "threshold" not in meta and "lam" not in meta
    assert meta["input"] == "images uint8 RGB nhwc 1x40x72x3"


def test_a_head_of_two_dilated_branches_exports_and_runs_like_pytorch(tmp_path, ort):
    segmentor = build_segmentor("dabnet", None)
    channels = segmentor.info.feature_channels
    head_file = random_head_file("dabnet", channels, -2.0, branches=((1, 1), (2, 4)))
    model = AnomalySegmenter(segmentor, head_file.build_head(), lam=head_file.lam).eval()
    path = export_onnx(model, head_file, tmp_path / "m.onnx", (40, 72))
    images = torch.randint(0, 256, (1, 3, 40, 72), dtype=torch.uint8)
    outputs, meta = run_onnx(ort, path, images.numpy())
    ref = model(images, scores=("sleeg",))
    check_parity(
        outputs["score"], ref.scores["sleeg"].numpy(), outputs["train_ids"],
        ref.train_ids.numpy(), unpool=False,
    )  # fmt: skip
    assert json.loads(meta["head_config"])["branches"] == [[1, 1], [2, 4]]


def test_clear_errors(tmp_path, tiny_model, tmp_model_args, capsys, ort):
    out = str(tmp_path / "m.onnx")
    weights = ["--segmentor", "enet", "--weights", str(tiny_model["weights"]), "--device", "cpu"]
    assert sleeg(["export", *weights, "--head", str(tmp_path / "no.pt"), "--out", out]) == 2
    assert "head file not found" in capsys.readouterr().err
    for size in ("512x", "512*1024", "4x64", "-8x64"):
        assert sleeg(["export", *tmp_model_args, f"--size={size}", "--out", out]) == 2
        assert f"bad size '{size}'" in capsys.readouterr().err
    assert sleeg(["export", *weights, "--score", "sleeg", "--out", out]) == 2
    assert "score 'sleeg' is not available" in capsys.readouterr().err
    assert sleeg(["export", *tmp_model_args, "--opset", "16", "--out", out]) == 2
    assert "opset 16 is too old" in capsys.readouterr().err
    assert sleeg(["export", *tmp_model_args, "--batch", "0", "--out", out]) == 2
    assert "batch must be at least 1" in capsys.readouterr().err
    model, head_file = load_segmenter("enet", tiny_model["weights"], tiny_model["head"], "cpu")
    model.tta = "scales"
    with pytest.raises(SleegError, match="tta 'scales' is not exported"):
        export_onnx(model, head_file, out, (64, 128))
    assert not (tmp_path / "m.onnx").exists()
    assert parse_size("256×512") == (256, 512)


@pytest.mark.shared
@pytest.mark.parametrize(
    ("segmentor", "weights", "channels"),
    [("enet", "enet.pth", 128), ("dabnet", "DABNet_cityscapes.pth", 259)],
)
def test_real_segmentor_and_head_on_real_frames_match_pytorch(
    tmp_path, ort, segmentor, weights, channels
):
    weights_file = shared_path("weights", f"{segmentor}_cityscapes", weights)
    frames = [read_rgb(shared_path("driving", name)) for name in REAL_FRAMES]
    images = np.stack([cv2.resize(f, (512, 256), interpolation=cv2.INTER_AREA) for f in frames])
    images = np.ascontiguousarray(images.transpose(0, 3, 1, 2))  # N×3×256×512
    head_file = random_head_file(segmentor, channels, threshold=-2.0)
    head_file.save(tmp_path / "head.pt")
    model, head_file = load_segmenter(None, weights_file, tmp_path / "head.pt", "cpu")
    path = export_onnx(model, head_file, tmp_path / "m.onnx", (256, 512), batch=len(frames))
    outputs, meta = run_onnx(ort, path, images)
    ref = model(torch.from_numpy(images), scores=("sleeg",))
    ref_score = ref.scores["sleeg"].numpy()
    check_parity(
        outputs["score"], ref_score, outputs["train_ids"], ref.train_ids.numpy(),
        unpool=segmentor == "enet",
    )  # fmt: skip
    assert (outputs["mask"] == (outputs["score"] >= -2.0)).all()
    assert meta["segmentor"] == segmentor and float(meta["threshold"]) == -2.0
    assert json.loads(meta["score_stats"]) == head_file.score_stats
    assert json.loads(meta["head_config"])["in_channels"] == channels
