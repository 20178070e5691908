"""What the torchvision segmentation models alone do with weights from local files: torchvision's
own numbers, auxiliary-classifier keys ignored, the class count read from the file. The Segmentor
contract they keep is in test_segmentors.py."""

import pytest
import torch
from torchvision.models import segmentation as tvseg

from sleeg_core.common.errors import SleegError
from sleeg_core.segmentors import build_segmentor


def test_strict_load_from_a_local_state_dict(tmp_path):
    torch.manual_seed(1)
    model = tvseg.fcn_resnet50(weights=None, weights_backbone=None, num_classes=19, aux_loss=True)
    path = tmp_path / "fcn.pth"
    torch.save(model.state_dict(), path)  # aux_classifier keys included, as in releases
    seg = build_segmentor("fcn_resnet50", path)
    x = torch.randint(0, 256, (1, 3, 64, 64), dtype=torch.uint8)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        expect = model.eval()((x.float() / 255 - mean) / std)["out"]
    assert torch.allclose(seg(x).logits, expect, rtol=1e-5, atol=1e-4)  # NHWC sums in another order


def test_voc_checkpoint_keeps_its_class_count(tmp_path):
    model = tvseg.lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=21)
    torch.save(model.state_dict(), tmp_path / "voc.pth")
    seg = build_segmentor("lraspp_mobilenet_v3_large", tmp_path / "voc.pth")
    assert seg.info.num_classes == 21 and seg.info.class_names[0] == "class_0"


def test_wrong_architecture_is_one_clear_error(tmp_path):
    model = tvseg.fcn_resnet50(weights=None, weights_backbone=None, num_classes=19)
    torch.save(model.state_dict(), tmp_path / "fcn.pth")
    with pytest.raises(SleegError, match=r"fcn\.pth") as err:
        build_segmentor("deeplabv3_resnet50", tmp_path / "fcn.pth")
    assert "missing" in str(err.value) or "unexpected" in str(err.value)
