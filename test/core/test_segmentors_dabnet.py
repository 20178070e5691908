"""DABNet behind the Segmentor interface: shapes, padding, frozen, checkpoint errors, training.

Random-weight tests always run; the real weights and the Cityscapes frame come from ../shared and
skip with the reason when absent.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch
from helpers.paths import shared_path
from helpers.segmentors import FRAME, ground_truth, pixel_accuracy, random_images
from helpers.training import make_frames
from torch import nn

from sleeg_core.cli import main as sleeg
from sleeg_core.common.errors import SleegError
from sleeg_core.data.images import read_rgb, to_batch
from sleeg_core.model.headfile import HeadFile
from sleeg_core.model.inference import load_segmenter
from sleeg_core.segmentors import build_segmentor, segmentor_names
from sleeg_core.segmentors.base import upsample_to_input
from sleeg_core.segmentors.dabnet import FEATURE_LAYERS, DABNet, DABNetSegmentor
from sleeg_core.segmentors.enet import ENet


@pytest.fixture(scope="module")
def dabnet() -> DABNetSegmentor:
    torch.manual_seed(0)
    return DABNetSegmentor(weights=None)


@pytest.fixture(scope="module")
def dabnet_fused(dabnet: DABNetSegmentor) -> DABNetSegmentor:
    """The same random weights as `dabnet`, returning the fused features."""
    seg = DABNetSegmentor(weights=None, feature_layer="fused")
    seg.load_state_dict(dabnet.state_dict())
    return seg


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory, dabnet: DABNetSegmentor) -> Path:
    """The random network saved the way the real file is: `{'epoch', 'model'}`."""
    path = tmp_path_factory.mktemp("dabnet") / "dabnet_random.pth"
    torch.save({"epoch": 1, "model": dabnet.net.state_dict()}, path)
    return path


# --- shapes, strides, padding -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("layer", "channels", "stride"),
    [("bn_prelu_3", 259, 8), ("bn_prelu_2", 131, 4), ("fused", 390, 4)],
)
@pytest.mark.parametrize(("b", "h", "w"), [(2, 37, 61), (1, 64, 96), (1, 67, 131), (1, 1, 9)])
def test_shapes_and_strides(layer: str, channels: int, stride: int, b: int, h: int, w: int):
    seg = DABNetSegmentor(weights=None, feature_layer=layer)
    assert (seg.info.name, seg.info.feature_layer) == ("dabnet", layer)
    assert (seg.info.feature_channels, seg.info.feature_stride) == (channels, stride)
    assert seg.info.num_classes == 19
    out = seg(random_images(b, h, w))
    assert out.coarse_logits.shape == (b, 19, math.ceil(h / 8), math.ceil(w / 8))
    assert out.logits.shape == (b, 19, h, w)
    assert out.features.shape == (b, channels, math.ceil(h / stride), math.ceil(w / stride))
    assert torch.isfinite(out.logits).all() and torch.isfinite(out.features).all()
    assert upsample_to_input(out.features, (h, w), stride).shape == (b, channels, h, w)


def test_default_feature_layer_is_what_the_classifier_reads(dabnet: DABNetSegmentor) -> None:
    assert dabnet.info.feature_layer == "bn_prelu_3"
    out = dabnet(random_images(1, 64, 96))
    logits = dabnet.net.classifier(out.features)
    torch.testing.assert_close(logits, out.coarse_logits)


@pytest.mark.parametrize("name", ["dabnet", "dabnet_fused"])
def test_padding_is_bottom_right_edge_replication(name: str, request: pytest.FixtureRequest):
    """An image already padded the way the segmentor pads gives the same numbers, cropped."""
    seg = request.getfixturevalue(name)
    small = random_images(1, 67, 131)
    padded = nn.functional.pad(small.float(), (0, 5, 0, 5), mode="replicate").to(torch.uint8)
    out_small, out_padded = seg(small), seg(padded)
    assert out_padded.logits.shape[-2:] == (72, 136)
    torch.testing.assert_close(out_small.logits, out_padded.logits[..., :67, :131])
    hf, wf = out_small.features.shape[-2:]
    torch.testing.assert_close(out_small.features, out_padded.features[..., :hf, :wf])


def test_fused_is_the_quarter_map_and_the_upsampled_eighth_map(
    dabnet: DABNetSegmentor, dabnet_fused: DABNetSegmentor
) -> None:
    images = random_images(2, 48, 80)
    fused = dabnet_fused(images).features
    quarter = DABNetSegmentor(weights=None, feature_layer="bn_prelu_2")
    quarter.load_state_dict(dabnet.state_dict())
    eighth = nn.functional.interpolate(dabnet(images).features, scale_factor=2, mode="bilinear")
    torch.testing.assert_close(fused, torch.cat([quarter(images).features, eighth], dim=1))
    torch.testing.assert_close(dabnet_fused(images).logits, dabnet(images).logits)


def test_batch_items_are_independent(dabnet: DABNetSegmentor) -> None:
    images = random_images(2, 40, 48)
    both = dabnet(images).logits
    torch.testing.assert_close(both[1:], dabnet(images[1:]).logits)


def test_channels_last_gives_the_default_layout_numbers(dabnet_fused: DABNetSegmentor) -> None:
    """Weights and inputs are NHWC (faster); a contiguous (NCHW) copy gives the same outputs."""
    conv_weights = [p for p in dabnet_fused.parameters() if p.ndim == 4]
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in conv_weights)
    nchw = copy.deepcopy(dabnet_fused).to(memory_format=torch.contiguous_format)
    images = random_images(1, 40, 56)
    fast, reference = dabnet_fused(images), nchw._forward(images.contiguous())
    torch.testing.assert_close(fast.logits, reference.logits, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(fast.features, reference.features, rtol=1e-4, atol=1e-4)


def test_train_ids_need_no_full_resolution_logits(dabnet: DABNetSegmentor) -> None:
    out = dabnet(random_images(2, 45, 70))
    train_ids = out.train_ids()
    assert "logits" not in vars(out)
    assert torch.equal(train_ids, out.logits.argmax(1).to(torch.uint8))


# --- frozen -------------------------------------------------------------------------------------


def test_frozen_inside_a_training_parent(dabnet: DABNetSegmentor) -> None:
    parent = nn.ModuleDict({"segmentor": dabnet, "head": nn.Conv2d(4, 2, 1)})
    parent.train()
    assert parent["head"].training
    assert not any(m.training for m in dabnet.modules())
    assert not any(p.requires_grad for p in dabnet.parameters())
    with torch.enable_grad():
        out = dabnet(random_images(1, 16, 16))
    assert not out.logits.requires_grad and not out.features.requires_grad


def test_eval_mode_outputs_do_not_depend_on_the_batch(dabnet: DABNetSegmentor) -> None:
    """BatchNorm uses its running statistics even after a parent's train()."""
    nn.Sequential(dabnet).train()
    image = random_images(1, 32, 32)
    batch = torch.cat([image, torch.zeros_like(image)])
    alone, together = dabnet(image).features, dabnet(batch).features[:1]
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-4)  # batched conv rounding


# --- options, registry --------------------------------------------------------------------------


def test_bad_feature_layer() -> None:
    with pytest.raises(SleegError, match=r"no feature layer 'bn_prelu_1'; choose one of: bn_pre"):
        DABNetSegmentor(feature_layer="bn_prelu_1")


def test_bad_input_is_a_value_error(dabnet: DABNetSegmentor) -> None:
    with pytest.raises(ValueError, match="uint8"):
        dabnet(torch.zeros(1, 3, 16, 16))


@pytest.mark.parametrize("layer", sorted(FEATURE_LAYERS))
def test_registry_builds_every_feature_layer(layer: str) -> None:
    assert "dabnet" in segmentor_names()
    seg = build_segmentor("dabnet", None, feature_layer=layer)
    assert isinstance(seg, DABNetSegmentor) and seg.info.feature_layer == layer


# --- checkpoint loading -------------------------------------------------------------------------


def test_model_entry_and_plain_state_dict_load(
    tmp_path: Path, dabnet: DABNetSegmentor, random_weights: Path
) -> None:
    plain = tmp_path / "plain.pth"
    torch.save(dabnet.net.state_dict(), plain)
    images = random_images(1, 24, 40)
    for path in (random_weights, plain):
        torch.testing.assert_close(
            DABNetSegmentor(weights=path)(images).logits, dabnet(images).logits
        )


def test_wrong_class_count_names_the_shape(tmp_path: Path) -> None:
    path = tmp_path / "dabnet20.pth"
    torch.save({"epoch": 1, "model": DABNet(num_classes=20).state_dict()}, path)
    with pytest.raises(SleegError) as err:
        DABNetSegmentor(weights=path)
    msg = str(err.value)
    assert "dabnet20.pth does not fit DABNet: 1 shape mismatches" in msg
    assert "classifier.0.conv.weight: checkpoint (20, 259, 1, 1) vs model (19, 259, 1, 1)" in msg
    assert "wrong class count?" in msg and "\n" not in msg


def test_other_architecture_names_missing_and_unexpected_keys(tmp_path: Path) -> None:
    path = tmp_path / "enet.pth"
    torch.save({"state_dict": ENet().state_dict()}, path)
    with pytest.raises(SleegError) as err:
        DABNetSegmentor(weights=path)
    msg = str(err.value)
    assert msg.startswith(f"weights file {path} does not fit DABNet: ")
    assert "missing keys (e.g. init_conv.0.conv.weight" in msg
    assert "unexpected keys (e.g. initial.conv.0.weight" in msg and "\n" not in msg


# --- real weights and a real Cityscapes frame (../shared) ---------------------------------------


@pytest.fixture(scope="module")
def real_weights() -> Path:
    return shared_path("weights", "dabnet_cityscapes", "DABNet_cityscapes.pth")


@pytest.mark.shared
def test_real_weights_load_strictly_and_segment_full_resolution(real_weights: Path) -> None:
    seg = DABNetSegmentor(weights=real_weights)
    state = torch.load(real_weights, map_location="cpu", weights_only=True)["model"]
    assert state.keys() == seg.net.state_dict().keys() and len(state) == 486
    assert sum(p.numel() for p in seg.parameters()) == 756_643
    image = read_rgb(shared_path("driving", f"{FRAME}_leftImg8bit.png"))
    assert image.shape == (1024, 2048, 3)
    logits = seg(to_batch(image)).logits
    assert pixel_accuracy(logits, ground_truth()) >= 0.96
    assert -20 < logits.min().item() < 0 < 20 < logits.max().item() < 40  # plain linear logits


@pytest.mark.shared
def test_enet_file_into_dabnet_is_a_clear_error() -> None:
    path = shared_path("weights", "enet_cityscapes", "enet.pth")
    with pytest.raises(SleegError) as err:
        DABNetSegmentor(weights=path)
    msg = str(err.value)
    assert "enet.pth does not fit DABNet" in msg
    assert "missing keys" in msg and "unexpected keys" in msg and "\n" not in msg


@pytest.mark.shared
def test_truncated_file_is_a_clear_error(tmp_path: Path, real_weights: Path) -> None:
    path = tmp_path / "dabnet_truncated.pth"
    path.write_bytes(real_weights.read_bytes()[:1_000_000])
    with pytest.raises(SleegError, match=r"cannot read weights file .*dabnet_truncated\.pth"):
        DABNetSegmentor(weights=path)


# --- a head trains on DABNet features -----------------------------------------------------------


def test_head_trains_on_fused_features_and_infers(tmp_path: Path, random_weights: Path) -> None:
    """`sleeg train --segmentor dabnet` with an option: the head file records both."""
    frames = make_frames(tmp_path / "frames", n=3)
    out = tmp_path / "run"
    args = ["train", "--segmentor", "dabnet", "--weights", str(random_weights),
            "--out", str(out), "--images", str(frames), "--iterations", "2", "--batch-size", "2",
            "--set", "segmentor.options={feature_layer: fused}", "--set", "head.width=8",
            "--set", "data.augment.crop=[64, 128]", "--set", "calibration.size=[64, 128]",
            "--set", "calibration.frames=2", "--set", "patches.n_patches=2",
            "--set", "refine.enabled=false", "--set", "data.workers=0",
            "--device", "cpu", "--no-progress"]  # fmt: skip
    assert sleeg(args) == 0
    head = HeadFile.load(out / "head.pt")
    assert (head.segmentor, head.feature_channels) == ("dabnet", 390)
    assert head.segmentor_options == {"feature_layer": "fused"}
    model, _ = load_segmenter("dabnet", random_weights, out / "head.pt", device="cpu")
    prediction = model(random_images(1, 67, 131))
    assert prediction.scores["sleeg"].shape == (1, 67, 131)
    assert torch.isfinite(prediction.scores["sleeg"]).all()
