"""The Segmentor contract, checked on every registered segmentor (`segmentor_names()`).

Shapes and dtypes of logits and features for each feature layer, edge-replication padding, lazy
train ids, batch independence, channels-last numbers, frozen inside a training parent, input
checks, strict weight loading from a file, and the real Cityscapes checkpoints' accuracy on a
Cityscapes frame from ../shared (skipped with the reason when absent). What one segmentor alone
does is tested in test_segmentors_<name>.py; the shared helpers of segmentors/base.py are here.
"""

from __future__ import annotations

import copy
import inspect
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.segmentors import (
    frame_rgb,
    ground_truth,
    known_weights_for,
    pixel_accuracy,
    random_images,
    real_logits,
)
from torch import nn

from sleeg_core.common.errors import SleegError
from sleeg_core.data.images import to_batch
from sleeg_core.data.labels import CITYSCAPES_CLASSES
from sleeg_core.segmentors import Segmentor, build_segmentor, segmentor_names
from sleeg_core.segmentors.base import upsample_to_input, upsampled_argmax

NAMES = segmentor_names()
# few distinct input shapes: a CPU network's first call at a new shape is its slow one
SIZES = [(2, 37, 61), (1, 37, 61), (1, 1, 9)]  # odd sizes and a 1-pixel-high one
# real checkpoint → the input size it is scored at ((w, h); None: the frame's 2048×1024) and the
# pixel accuracy it reaches there on the frame (measured: ENet 0.96, ESPNet 0.94, DABNet 0.96)
REAL_ACCURACY = {"enet": (None, 0.96), "espnet": ((1024, 512), 0.93), "dabnet": (None, 0.96)}


@pytest.fixture(scope="module", params=NAMES)
def segmentor(request: pytest.FixtureRequest) -> Segmentor:
    """Each registered segmentor with random weights (seed 0), built once for this module."""
    torch.manual_seed(0)
    return build_segmentor(request.param, None)


def size_multiple(seg: Segmentor) -> int | None:
    """The multiple the segmentor pads its input to (its module's SIZE_MULTIPLE), or None."""
    return getattr(inspect.getmodule(type(seg)), "SIZE_MULTIPLE", None)


def feature_layers(seg: Segmentor) -> dict[str, tuple[int, int]]:
    """Feature layer → (channels, stride): its module's FEATURE_LAYERS, or its one layer."""
    default = {seg.info.feature_layer: (seg.info.feature_channels, seg.info.feature_stride)}
    return getattr(inspect.getmodule(type(seg)), "FEATURE_LAYERS", default)


def with_layer(seg: Segmentor, layer: str) -> Segmentor:
    """The same segmentor reading `layer` (the same random weights)."""
    if layer == seg.info.feature_layer:
        return seg
    other = build_segmentor(seg.info.name, None, feature_layer=layer)
    other.load_state_dict(seg.state_dict())
    return other


# --- registry and info --------------------------------------------------------------------------


def test_the_registry_builds_it_with_its_name_and_the_cityscapes_classes(segmentor: Segmentor):
    assert segmentor.info.name in NAMES
    assert segmentor.info.class_names == CITYSCAPES_CLASSES and segmentor.info.num_classes == 19
    multiple, note = size_multiple(segmentor), segmentor.info.input_note
    if multiple is None:
        assert "any size" in note
    else:  # the size rule is stated where users read it
        assert f"padded bottom/right to a multiple of {multiple} by edge replication" in note


def test_the_registry_names_each_family_and_refuses_an_unknown_name() -> None:
    assert {"enet", "espnet", "dabnet", "deeplabv3_resnet101", "lraspp_mobilenet_v3_large"} <= set(
        NAMES
    )
    with pytest.raises(SleegError, match="unknown segmentor 'segformer'; choose one of: enet"):
        build_segmentor("segformer", None)


# --- shapes, strides, padding -------------------------------------------------------------------


def test_every_feature_layer_gives_its_shapes_and_strides(segmentor: Segmentor) -> None:
    for layer, (channels, stride) in feature_layers(segmentor).items():
        seg = with_layer(segmentor, layer)
        assert (seg.info.feature_layer, seg.info.feature_channels) == (layer, channels)
        assert seg.info.feature_stride == stride
        for b, h, w in SIZES:
            out = seg(random_images(b, h, w))
            assert out.logits.shape == (b, 19, h, w) and out.logits.dtype == torch.float32
            assert out.coarse_logits.shape[:2] == (b, 19)
            feature_shape = (b, channels, math.ceil(h / stride), math.ceil(w / stride))
            assert out.features.shape == feature_shape and out.features.dtype == torch.float32
            assert torch.isfinite(out.logits).all() and torch.isfinite(out.features).all()
            assert upsample_to_input(out.features, (h, w), stride).shape == (b, channels, h, w)


def test_padding_is_bottom_right_edge_replication(segmentor: Segmentor) -> None:
    """An image already padded the way the segmentor pads gives the same numbers, cropped."""
    multiple = size_multiple(segmentor)
    if multiple is None:
        pytest.skip(f"{segmentor.info.name} takes any size: it pads nothing")
    h, w = 37, 61
    small = random_images(1, h, w)
    pad_h, pad_w = -h % multiple, -w % multiple
    assert pad_h and pad_w  # the case under test: both sides padded
    padded = nn.functional.pad(small.float(), (0, pad_w, 0, pad_h), mode="replicate")
    out_small, out_padded = segmentor(small), segmentor(padded.to(torch.uint8))
    assert out_padded.logits.shape[-2:] == (h + pad_h, w + pad_w)
    torch.testing.assert_close(out_small.logits, out_padded.logits[..., :h, :w])
    hf, wf = out_small.features.shape[-2:]
    torch.testing.assert_close(out_small.features, out_padded.features[..., :hf, :wf])


def test_train_ids_need_no_full_resolution_logits(segmentor: Segmentor) -> None:
    out = segmentor(random_images(2, 37, 61))
    train_ids = out.train_ids()
    assert "logits" not in vars(out)  # the lazy full-resolution logits were never built
    assert train_ids.dtype == torch.uint8 and train_ids.shape == (2, 37, 61)
    assert torch.equal(train_ids, out.logits.argmax(1).to(torch.uint8))


def test_channels_last_gives_the_default_layout_numbers(segmentor: Segmentor) -> None:
    """Weights and inputs are NHWC (faster); a contiguous (NCHW) copy gives the same outputs."""
    conv_weights = [p for p in segmentor.parameters() if p.ndim == 4]
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in conv_weights)
    nchw = copy.deepcopy(segmentor).to(memory_format=torch.contiguous_format)
    assert all(p.is_contiguous() for p in nchw.parameters())
    images = random_images(1, 37, 61)
    fast, reference = segmentor(images), nchw._forward(images.contiguous())
    for got, expected in ((fast.logits, reference.logits), (fast.features, reference.features)):
        atol = 1e-4 * max(1.0, expected.abs().max().item())  # summation order, deep ResNets too
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=atol)


# --- frozen -------------------------------------------------------------------------------------


def test_frozen_inside_a_training_parent(segmentor: Segmentor) -> None:
    parent = nn.ModuleDict({"segmentor": segmentor, "head": nn.Conv2d(4, 2, 1)})
    parent.train()
    assert parent["head"].training
    assert not any(m.training for m in segmentor.modules())
    assert not any(p.requires_grad for p in segmentor.parameters())
    with torch.enable_grad():
        out = segmentor(random_images(1, 37, 61))
    assert not out.logits.requires_grad and not out.features.requires_grad


def test_batch_items_are_independent_even_after_a_parents_train(segmentor: Segmentor) -> None:
    """BatchNorm uses its running statistics: an item's outputs do not depend on the others."""
    nn.Sequential(segmentor).train()
    images = random_images(2, 37, 61)
    other = images.clone()
    other[1] = 0  # the same first item next to a different second one
    a, b = segmentor(images), segmentor(other)
    torch.testing.assert_close(a.logits[:1], b.logits[:1], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(a.features[:1], b.features[:1], rtol=1e-4, atol=1e-4)
    assert not torch.allclose(a.logits[1:], b.logits[1:])  # the second items do differ


@pytest.mark.parametrize(
    ("images", "match"),
    [
        (torch.zeros(1, 3, 16, 16), "uint8"),
        (torch.zeros(3, 16, 16, dtype=torch.uint8), "B×3×H×W"),
        (torch.zeros(1, 1, 16, 16, dtype=torch.uint8), "B×3×H×W"),
        (torch.zeros(0, 3, 16, 16, dtype=torch.uint8), "empty"),
    ],
)
def test_bad_inputs_are_value_errors(segmentor: Segmentor, images: torch.Tensor, match: str):
    with pytest.raises(ValueError, match=match):
        segmentor(images)


# --- weights from a file ------------------------------------------------------------------------


def network_state(seg: Segmentor) -> dict[str, torch.Tensor]:
    """The wrapped network's state dict, as a checkpoint file holds it (no wrapper prefix)."""
    return {k.split(".", 1)[1]: v for k, v in seg.state_dict().items()}


def test_its_own_weights_load_strictly_from_a_file(segmentor: Segmentor, tmp_path: Path):
    path = tmp_path / "weights.pth"
    torch.save({"state_dict": network_state(segmentor)}, path)
    images = random_images(1, 37, 61)
    loaded = build_segmentor(segmentor.info.name, path)
    torch.testing.assert_close(loaded(images).logits, segmentor(images).logits)


def test_a_file_of_another_network_is_one_clear_error(segmentor: Segmentor, tmp_path: Path):
    path = tmp_path / "other.pth"
    torch.save(nn.Conv2d(3, 19, 1).state_dict(), path)
    with pytest.raises(SleegError) as err:
        build_segmentor(segmentor.info.name, path)
    assert "\n" not in str(err.value)


def test_a_missing_file_is_named(segmentor: Segmentor, tmp_path: Path) -> None:
    with pytest.raises(SleegError, match=r"not found.*nope\.pth"):
        build_segmentor(segmentor.info.name, tmp_path / "nope.pth")


def test_a_truncated_file_is_one_clear_error(segmentor: Segmentor, tmp_path: Path) -> None:
    whole, cut = tmp_path / "whole.pth", tmp_path / "cut.pth"
    torch.save(network_state(segmentor), whole)
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(SleegError, match=r"cannot read weights file .*cut\.pth"):
        build_segmentor(segmentor.info.name, cut)


# --- real weights and a real Cityscapes frame (../shared) ---------------------------------------


@pytest.mark.shared
@pytest.mark.parametrize("name", NAMES)
def test_the_real_checkpoint_segments_a_cityscapes_frame(name: str) -> None:
    size, accuracy = REAL_ACCURACY.get(name, (None, 1.0))
    logits = real_logits(name, size)  # skips when no checkpoint is known or ../shared lacks it
    assert frame_rgb().shape == (1024, 2048, 3)
    assert pixel_accuracy(logits, ground_truth(size)) >= accuracy


def test_every_known_checkpoint_has_an_accuracy_to_reach() -> None:
    assert {n for n in NAMES if known_weights_for(n)} == set(REAL_ACCURACY)


# --- segmentors/base.py and data/images.py helpers ----------------------------------------------


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


def test_upsample_to_input_rejects_too_small_maps() -> None:
    with pytest.raises(ValueError, match="cannot cover"):
        upsample_to_input(torch.zeros(1, 2, 4, 4), (40, 32), 8)


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
