"""What ENet and ESPNet alone do: ENet's two logits sources, their option errors and the messages
of ENet's checkpoint errors. The Segmentor contract both keep is in test_segmentors.py.

Random-weight tests always run; the real weights and the Cityscapes frame come from ../shared and
skip with the reason when absent.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest
import torch
from helpers.paths import shared_path
from helpers.segmentors import frame_rgb, random_images, real_segmentor

from sleeg_core.common.errors import SleegError
from sleeg_core.data.images import to_batch
from sleeg_core.segmentors.enet import ENet, ENetSegmentor
from sleeg_core.segmentors.espnet import ESPNet, ESPNetSegmentor


@pytest.fixture(scope="module")
def enet() -> ENetSegmentor:
    torch.manual_seed(0)
    return ENetSegmentor(weights=None)


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


# --- checkpoint loading -------------------------------------------------------------------------


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


# --- real weights and a real Cityscapes frame (../shared) ---------------------------------------


@pytest.mark.shared
def test_enet_real_logits_sources_agree() -> None:
    real_enet = real_segmentor("enet")
    batch = to_batch(cv2.resize(frame_rgb(), (1024, 512), interpolation=cv2.INTER_AREA))
    pre = ENetSegmentor(weights=None, logits_source="pre_activation")
    pre.net.load_state_dict(real_enet.net.state_dict())
    agree = real_enet(batch).logits.argmax(1) == pre(batch).logits.argmax(1)
    assert agree.float().mean().item() >= 0.999


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
