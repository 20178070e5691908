"""ENet and ESPNet behind the Segmentor interface, the checkpoint loader and the Cityscapes colours.

Random-weight tests always run; the real weights and the Cityscapes frame come from ../shared and
skip with the reason when absent.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from helpers.paths import shared_path
from helpers.segmentors import FRAME, ground_truth, pixel_accuracy, random_images
from torch import nn

from sleeg_core.common.errors import SleegError
from sleeg_core.common.state_dicts import load_state_dict_file, load_strict
from sleeg_core.data.images import read_rgb, to_batch
from sleeg_core.data.labels import CITYSCAPES_PALETTE, color_to_train_ids, colorize
from sleeg_core.segmentors import build_segmentor
from sleeg_core.segmentors.base import Segmentor, upsample_to_input, upsampled_argmax
from sleeg_core.segmentors.enet import ENet, ENetSegmentor
from sleeg_core.segmentors.espnet import ESPNet, ESPNetSegmentor


@pytest.fixture(scope="module")
def enet() -> ENetSegmentor:
    torch.manual_seed(0)
    return ENetSegmentor(weights=None)


@pytest.fixture(scope="module")
def espnet() -> ESPNetSegmentor:
    torch.manual_seed(0)
    return ESPNetSegmentor(weights=None)


# --- shapes, strides, padding -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "layer", "channels", "stride"),
    [
        (ENetSegmentor, "bottleneck2", 128, 8),
        (ENetSegmentor, "bottleneck3", 128, 8),
        (ENetSegmentor, "bottleneck4", 64, 4),
        (ENetSegmentor, "bottleneck5", 16, 2),
        (ESPNetSegmentor, "encoder.b3", 256, 8),
        (ESPNetSegmentor, "encoder.b2", 131, 4),
    ],
)
@pytest.mark.parametrize(("b", "h", "w"), [(2, 37, 61), (1, 64, 96), (1, 1, 9)])
def test_shapes_and_strides(
    cls: type[Segmentor], layer: str, channels: int, stride: int, b: int, h: int, w: int
) -> None:
    seg = cls(weights=None, feature_layer=layer)
    assert (seg.info.feature_layer, seg.info.feature_channels) == (layer, channels)
    assert seg.info.feature_stride == stride and seg.info.num_classes == 19
    out = seg(random_images(b, h, w))
    assert out.logits.shape == (b, 19, h, w)
    assert out.features.shape == (b, channels, math.ceil(h / stride), math.ceil(w / stride))
    assert torch.isfinite(out.logits).all() and torch.isfinite(out.features).all()
    assert upsample_to_input(out.features, (h, w), stride).shape == (b, channels, h, w)


@pytest.mark.parametrize("name", ["enet", "espnet"])
def test_padding_is_bottom_right_edge_replication(name: str, request: pytest.FixtureRequest):
    """An image already padded the way the segmentor pads gives the same numbers, cropped."""
    seg = request.getfixturevalue(name)
    small = random_images(1, 37, 45)
    padded = nn.functional.pad(small.float(), (0, 3, 0, 3), mode="replicate").to(torch.uint8)
    out_small, out_padded = seg(small), seg(padded)
    torch.testing.assert_close(out_small.logits, out_padded.logits[..., :37, :45])
    hf, wf = out_small.features.shape[-2:]
    torch.testing.assert_close(out_small.features, out_padded.features[..., :hf, :wf])


def test_batch_items_are_independent(enet: ENetSegmentor) -> None:
    images = random_images(2, 40, 48)
    both = enet(images).logits
    torch.testing.assert_close(both[1:], enet(images[1:]).logits)


@pytest.mark.parametrize("name", ["enet", "espnet"])
def test_channels_last_gives_the_default_layout_numbers(
    name: str, request: pytest.FixtureRequest
) -> None:
    """Weights and inputs are NHWC (faster); a contiguous (NCHW) copy gives the same outputs."""
    seg = request.getfixturevalue(name)
    conv_weights = [p for p in seg.parameters() if p.ndim == 4]
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in conv_weights)
    nchw = copy.deepcopy(seg).to(memory_format=torch.contiguous_format)
    assert all(p.is_contiguous() for p in nchw.parameters())
    images = random_images(1, 40, 56)
    fast, reference = seg(images), nchw._forward(images.contiguous())
    torch.testing.assert_close(fast.logits, reference.logits, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(fast.features, reference.features, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    ("coarse_hw", "size", "crop"),
    [((7, 9), (14, 18), (13, 17)), ((5, 5), (37, 41), (37, 41)), ((33, 65), (64, 128), (60, 127)),
     ((1, 1), (8, 8), (8, 8)), ((3, 1), (9, 4), (9, 4)), ((16, 32), (16, 32), (15, 30))],
)  # fmt: skip
@pytest.mark.parametrize("smooth", [False, True])
def test_upsampled_argmax_is_the_argmax_of_the_upsampled_logits(coarse_hw, size, crop, smooth):
    """Only pixels near class borders are interpolated, yet every pixel matches."""
    g = torch.Generator().manual_seed(sum(coarse_hw))
    if smooth:  # large regions of one class, as real logits have
        coarse = torch.randn(2, 19, 3, 3, generator=g)
        coarse = nn.functional.interpolate(coarse, size=coarse_hw, mode="bilinear")
    else:
        coarse = torch.randn(2, 19, *coarse_hw, generator=g)
    full = nn.functional.interpolate(coarse, size=size, mode="bilinear")[..., : crop[0], : crop[1]]
    fast = upsampled_argmax(coarse, size, crop)
    assert fast.dtype == torch.uint8 and fast.shape == (2, *crop)
    assert torch.equal(fast, full.argmax(1).to(torch.uint8))


@pytest.mark.parametrize("name", ["enet", "espnet"])
def test_train_ids_need_no_full_resolution_logits(name: str, request: pytest.FixtureRequest):
    seg = request.getfixturevalue(name)
    out = seg(random_images(2, 45, 70))
    train_ids = out.train_ids()
    assert "logits" not in vars(out)  # the lazy full-resolution logits were never built
    assert torch.equal(train_ids, out.logits.argmax(1).to(torch.uint8))
    assert out.logits.shape == (2, 19, 45, 70)


def test_upsample_to_input_rejects_too_small_maps() -> None:
    with pytest.raises(ValueError, match="cannot cover"):
        upsample_to_input(torch.zeros(1, 2, 4, 4), (40, 32), 8)


# --- frozen -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["enet", "espnet"])
def test_frozen_inside_a_training_parent(name: str, request: pytest.FixtureRequest) -> None:
    seg = request.getfixturevalue(name)
    parent = nn.ModuleDict({"segmentor": seg, "head": nn.Conv2d(4, 2, 1)})
    parent.train()
    assert parent["head"].training
    assert not any(m.training for m in seg.modules())
    assert not any(p.requires_grad for p in seg.parameters())
    with torch.enable_grad():
        out = seg(random_images(1, 16, 16))
    assert not out.logits.requires_grad and not out.features.requires_grad


# --- ENet logits source -------------------------------------------------------------------------


def test_enet_logits_sources_agree_before_upsampling(enet: ENetSegmentor) -> None:
    """With a positive PReLU slope the activation is monotonic: same argmax at stride 2.

    (After the bilinear ×2 the two can differ at interpolated pixels: PReLU and interpolation do
    not commute. That is why both sources are offered and measured.)
    """
    assert enet.net.fullconv.up_conv[0][2].activation.weight.item() > 0
    x = random_images(2, 40, 64).float() / 255  # the network itself needs sizes divisible by 8
    out = enet.net(x)
    assert torch.equal(out["output"].argmax(1), out["pre_activation"].argmax(1))


def test_enet_logits_sources_are_wired() -> None:
    torch.manual_seed(1)
    output = ENetSegmentor(weights=None, logits_source="output")
    pre = ENetSegmentor(weights=None, logits_source="pre_activation")
    pre.load_state_dict(output.state_dict())
    images = random_images(1, 40, 48)
    assert not torch.equal(output(images).logits, pre(images).logits)
    prelu = output.net.fullconv.up_conv[0][2].activation
    prelu.weight.fill_(1.0)  # identity activation: the two sources coincide
    torch.testing.assert_close(output(images).logits, pre(images).logits)


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: ENetSegmentor(feature_layer="bottleneck9"), "no feature layer 'bottleneck9'"),
        (lambda: ENetSegmentor(logits_source="softmax"), "logits_source 'softmax'"),
        (lambda: ESPNetSegmentor(feature_layer="level3"), "no feature layer 'level3'"),
    ],
)
def test_bad_options(make, match: str) -> None:
    with pytest.raises(SleegError, match=match):
        make()


@pytest.mark.parametrize(
    ("images", "match"),
    [
        (torch.zeros(1, 3, 16, 16), "uint8"),
        (torch.zeros(3, 16, 16, dtype=torch.uint8), "B×3×H×W"),
        (torch.zeros(1, 1, 16, 16, dtype=torch.uint8), "B×3×H×W"),
        (torch.zeros(0, 3, 16, 16, dtype=torch.uint8), "empty"),
    ],
)
@pytest.mark.parametrize("name", ["enet", "espnet"])
def test_bad_inputs(
    name: str, images: torch.Tensor, match: str, request: pytest.FixtureRequest
) -> None:
    with pytest.raises(ValueError, match=match):
        request.getfixturevalue(name)(images)


def test_registry_builds_both() -> None:
    assert isinstance(build_segmentor("enet", None, feature_layer="bottleneck4"), ENetSegmentor)
    assert isinstance(build_segmentor("espnet", None), ESPNetSegmentor)


# --- checkpoint loading -------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SleegError, match=r"not found.*nope\.pth"):
        ENetSegmentor(weights=tmp_path / "nope.pth")


def test_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "garbage.pth"
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(SleegError, match=r"cannot read weights file .*garbage\.pth"):
        load_state_dict_file(path)


@pytest.mark.parametrize("content", [[1, 2], torch.zeros(3), {"state_dict": {"a": 1}}, {}])
def test_not_a_state_dict(tmp_path: Path, content: object) -> None:
    path = tmp_path / "odd.pth"
    torch.save(content, path)
    with pytest.raises(SleegError, match=r"odd\.pth"):
        load_state_dict_file(path)


def test_checkpoint_forms(tmp_path: Path) -> None:
    """`state_dict` entry, explicit key, `module.` prefix, denormals flushed to 0."""
    weights = {"module.w": torch.tensor([1.0, 1e-40]), "module.n": torch.tensor(3)}
    torch.save({"state_dict": weights, "ema": {"w": torch.ones(1)}, "epoch": 3}, tmp_path / "c.pt")
    loaded = load_state_dict_file(tmp_path / "c.pt")
    assert set(loaded) == {"w", "n"}
    assert loaded["w"].tolist() == [1.0, 0.0] and loaded["n"].item() == 3
    assert load_state_dict_file(tmp_path / "c.pt", key="ema")["w"].tolist() == [1.0]
    with pytest.raises(SleegError, match="no entry 'model'"):
        load_state_dict_file(tmp_path / "c.pt", key="model")


def test_wrong_class_count_names_the_shapes(tmp_path: Path) -> None:
    path = tmp_path / "enet20.pth"
    torch.save({"state_dict": ENet(num_classes=20).state_dict()}, path)
    with pytest.raises(SleegError) as err:
        ENetSegmentor(weights=path)
    msg = str(err.value)
    assert "enet20.pth" in msg and "5 shape mismatches" in msg
    assert "fullconv.up_conv.0.0.weight: checkpoint (20, 16, 1, 1) vs model (19, 16, 1, 1)" in msg
    assert "wrong class count?" in msg
    assert "\n" not in msg


def test_other_architecture_names_missing_and_unexpected_keys(tmp_path: Path) -> None:
    path = tmp_path / "espnet.pth"
    torch.save(ESPNet().state_dict(), path)
    with pytest.raises(
        SleegError, match=r"espnet\.pth does not fit ENet: \d+ missing keys \(e\.g\. "
    ):
        ENetSegmentor(weights=path)
    with pytest.raises(SleegError, match=r"\d+ unexpected keys \(e\.g\. encoder\.level1"):
        ENetSegmentor(weights=path)


def test_old_checkpoints_without_batch_counters_load() -> None:
    """Files from PyTorch < 0.4.1 (like ESPNet's) have no BatchNorm `num_batches_tracked`."""
    state = {k: v for k, v in ESPNet().state_dict().items() if "num_batches_tracked" not in k}
    load_strict(ESPNet(), state, "old.pth")


# --- Cityscapes colours -------------------------------------------------------------------------


def test_colour_round_trip() -> None:
    ids = np.array([[0, 1, 18, 255], [13, 19, 254, 5]], dtype=np.uint8)
    rgb = colorize(ids)
    assert rgb.shape == (2, 4, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[0, 2]) == CITYSCAPES_PALETTE[18]
    assert rgb[0, 3].tolist() == rgb[1, 1].tolist() == rgb[1, 2].tolist() == [0, 0, 0]
    expected = np.where(ids < 19, ids, 255)
    np.testing.assert_array_equal(color_to_train_ids(rgb), expected)
    np.testing.assert_array_equal(colorize(torch.from_numpy(ids).long()), rgb)
    assert colorize(torch.tensor([[-1, 300]])).tolist() == [[[0, 0, 0], [0, 0, 0]]]


def test_unknown_colours_are_void() -> None:
    rgb = np.array([[[128, 64, 128], [111, 74, 0], [128, 64, 129]]], dtype=np.uint8)
    assert color_to_train_ids(rgb).tolist() == [[0, 255, 255]]


# --- real weights and a real Cityscapes frame (../shared) ---------------------------------------


@pytest.fixture(scope="module")
def real_enet() -> ENetSegmentor:
    return ENetSegmentor(weights=shared_path("weights", "enet_cityscapes", "enet.pth"))


@pytest.mark.shared
def test_enet_real_weights_full_resolution(real_enet: ENetSegmentor) -> None:
    image = read_rgb(shared_path("driving", f"{FRAME}_leftImg8bit.png"))
    assert image.shape == (1024, 2048, 3)
    assert pixel_accuracy(real_enet(to_batch(image)).logits, ground_truth()) >= 0.96


@pytest.mark.shared
def test_enet_real_logits_sources_agree(real_enet: ENetSegmentor) -> None:
    image = read_rgb(shared_path("driving", f"{FRAME}_leftImg8bit.png"))
    batch = to_batch(cv2.resize(image, (1024, 512), interpolation=cv2.INTER_AREA))
    pre = ENetSegmentor(weights=None, logits_source="pre_activation")
    pre.net.load_state_dict(real_enet.net.state_dict())
    agree = real_enet(batch).logits.argmax(1) == pre(batch).logits.argmax(1)
    assert agree.float().mean().item() >= 0.999


@pytest.mark.shared
def test_espnet_real_weights(tmp_path: Path) -> None:
    seg = ESPNetSegmentor(weights=shared_path("weights", "espnet_cityscapes", "espnet_p_2_q_8.pth"))
    image = read_rgb(shared_path("driving", f"{FRAME}_leftImg8bit.png"))
    batch = to_batch(cv2.resize(image, (1024, 512), interpolation=cv2.INTER_AREA))
    assert pixel_accuracy(seg(batch).logits, ground_truth((1024, 512))) >= 0.93


@pytest.mark.shared
def test_espnet_file_into_enet_is_a_clear_error() -> None:
    path = shared_path("weights", "espnet_cityscapes", "espnet_p_2_q_8.pth")
    with pytest.raises(SleegError) as err:
        ENetSegmentor(weights=path)
    msg = str(err.value)
    assert "espnet_p_2_q_8.pth" in msg and "missing keys" in msg and "unexpected keys" in msg


@pytest.mark.shared
def test_truncated_enet_file_is_a_clear_error(tmp_path: Path) -> None:
    data = shared_path("weights", "enet_cityscapes", "enet.pth").read_bytes()
    path = tmp_path / "enet_truncated.pth"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(SleegError, match=r"cannot read weights file .*enet_truncated\.pth"):
        ENetSegmentor(weights=path)


def test_to_batch_keeps_the_pixels_in_channels_last_memory() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    batch = to_batch(rgb)
    assert batch.shape == (1, 3, 5, 7) and batch.dtype == torch.uint8
    assert batch.is_contiguous(memory_format=torch.channels_last)  # no reordering copy
    assert torch.equal(batch[0].permute(1, 2, 0), torch.from_numpy(rgb))
    two = to_batch([rgb, rgb[::-1]])  # a list is stacked; views with odd strides are fine
    assert two.shape == (2, 3, 5, 7) and torch.equal(
        two[1].permute(1, 2, 0)[0], torch.from_numpy(rgb[-1])
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_to_batch_on_cuda_goes_through_pinned_memory() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    batch = to_batch(rgb, "cuda")
    assert batch.is_cuda and torch.equal(batch.cpu(), to_batch(rgb))
