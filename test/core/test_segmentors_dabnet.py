"""What DABNet alone does: its coarse stride-8 logits, the fused feature layer, its release's
checkpoint form and error messages, the real file, and a head trained on its features. The
Segmentor contract it keeps is in test_segmentors.py.

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
from helpers.segmentors import random_images, real_logits, real_segmentor
from helpers.training import make_frames
from torch import nn

from sleeg_core.cli import main as sleeg
from sleeg_core.common.errors import SleegError
from sleeg_core.model.headfile import HeadFile
from sleeg_core.model.inference import load_segmenter
from sleeg_core.segmentors.dabnet import DABNet, DABNetSegmentor
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


def test_coarse_logits_are_at_stride_8(dabnet: DABNetSegmentor) -> None:
    for b, h, w in [(2, 37, 61), (1, 1, 9)]:
        out = dabnet(random_images(b, h, w))
        assert out.coarse_logits.shape == (b, 19, math.ceil(h / 8), math.ceil(w / 8))


def test_default_feature_layer_is_what_the_classifier_reads(dabnet: DABNetSegmentor) -> None:
    assert dabnet.info.feature_layer == "bn_prelu_3"
    out = dabnet(random_images(1, 64, 96))
    logits = dabnet.net.classifier(out.features)
    torch.testing.assert_close(logits, out.coarse_logits)


def test_fused_features_are_padded_by_bottom_right_edge_replication(
    dabnet_fused: DABNetSegmentor,
) -> None:
    """An image already padded the way the segmentor pads gives the same numbers, cropped: the
    fused map too, whose stride-8 half is upsampled before the crop."""
    seg = dabnet_fused
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


def test_fused_features_in_channels_last_are_the_default_layout_numbers(
    dabnet_fused: DABNetSegmentor,
) -> None:
    """Weights and inputs are NHWC (faster); a contiguous (NCHW) copy gives the same outputs."""
    conv_weights = [p for p in dabnet_fused.parameters() if p.ndim == 4]
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in conv_weights)
    nchw = copy.deepcopy(dabnet_fused).to(memory_format=torch.contiguous_format)
    images = random_images(1, 40, 56)
    fast, reference = dabnet_fused(images), nchw._forward(images.contiguous())
    torch.testing.assert_close(fast.logits, reference.logits, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(fast.features, reference.features, rtol=1e-4, atol=1e-4)


# --- options --------------------------------------------------------------------------


def test_bad_feature_layer() -> None:
    with pytest.raises(SleegError, match=r"no feature layer 'bn_prelu_1'; choose one of: bn_pre"):
        DABNetSegmentor(feature_layer="bn_prelu_1")


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
def test_real_weights_are_the_whole_network_with_plain_linear_logits(real_weights: Path) -> None:
    """The file's 486 entries are exactly the network's; its logits are not probabilities (its
    accuracy on the Cityscapes frame: test_segmentors.py)."""
    seg = real_segmentor("dabnet")
    state = torch.load(real_weights, map_location="cpu", weights_only=True)["model"]
    assert state.keys() == seg.net.state_dict().keys() and len(state) == 486
    assert sum(p.numel() for p in seg.parameters()) == 756_643
    logits = real_logits("dabnet")  # on the 2048×1024 frame
    assert -20 < logits.min().item() < 0 < 20 < logits.max().item() < 40


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
