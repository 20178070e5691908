"""torchvision's segmentation family (DeepLabV3, FCN, LRASPP) as frozen sleeg segmentors.

The architectures come from torchvision; the weights always come from a local state-dict file
(never a hub download). torchvision's own releases are trained on COCO with the 21 VOC classes:
for road scenes use a Cityscapes-trained state dict (19 classes, train-id order). The class count
is read from the checkpoint's classifier, so a 21-class file loads too (with generic class names).
The head reads the backbone's last stage ("layer4": 2048 channels at stride 8 for the ResNets,
"high": 960 channels at stride 16 for MobileNetV3).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torchvision.models import segmentation as tvseg

from sleeg_core.common.errors import SleegError
from sleeg_core.common.state_dicts import load_state_dict_file, load_strict
from sleeg_core.data.labels import CITYSCAPES_CLASSES
from sleeg_core.segmentors.base import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Segmentor,
    SegmentorInfo,
    SegmentorOutput,
    normalise,
)

# name → (builder, feature key in the backbone's output, feature channels, feature stride)
ARCHITECTURES: dict[str, tuple[Callable[..., nn.Module], str, int, int]] = {
    "deeplabv3_resnet50": (tvseg.deeplabv3_resnet50, "out", 2048, 8),
    "deeplabv3_resnet101": (tvseg.deeplabv3_resnet101, "out", 2048, 8),
    "fcn_resnet50": (tvseg.fcn_resnet50, "out", 2048, 8),
    "fcn_resnet101": (tvseg.fcn_resnet101, "out", 2048, 8),
    "lraspp_mobilenet_v3_large": (tvseg.lraspp_mobilenet_v3_large, "high", 960, 16),
}


def _classifier_classes(state_dict: dict[str, torch.Tensor], arch: str) -> int:
    """The class count stored in the checkpoint's final classifier layer."""
    key = (
        "classifier.high_classifier.weight" if arch.startswith("lraspp") else "classifier.4.weight"
    )
    if key not in state_dict:
        raise SleegError(f"checkpoint has no '{key}': not a torchvision {arch} state dict")
    return int(state_dict[key].shape[0])


class TorchvisionSegmentor(Segmentor):
    """A torchvision segmentation model, frozen, reading weights from a local state dict.

    `weights=None` builds random weights with `num_classes` classes (tests, benchmarks).
    Auxiliary-classifier weights in the file are ignored (only used in training).
    """

    def __init__(self, arch: str, weights: str | Path | None = None, num_classes: int = 19):
        super().__init__()
        if arch not in ARCHITECTURES:
            raise SleegError(f"unknown torchvision architecture '{arch}': {sorted(ARCHITECTURES)}")
        builder, self._feature_key, channels, stride = ARCHITECTURES[arch]
        state_dict = None
        if weights is not None:
            state_dict = load_state_dict_file(weights)
            state_dict = {
                k: v for k, v in state_dict.items() if not k.startswith("aux_classifier.")
            }
            num_classes = _classifier_classes(state_dict, arch)
        self.model = builder(weights=None, weights_backbone=None, num_classes=num_classes)
        if getattr(self.model, "aux_classifier", None) is not None:
            self.model.aux_classifier = None
        if state_dict is not None:
            load_strict(self.model, state_dict, str(weights))
        names = (
            CITYSCAPES_CLASSES
            if num_classes == len(CITYSCAPES_CLASSES)
            else tuple(f"class_{i}" for i in range(num_classes))
        )
        self.info = SegmentorInfo(
            name=arch,
            class_names=names,
            feature_channels=channels,
            feature_stride=stride,
            feature_layer="backbone." + ("layer4" if self._feature_key == "out" else "high"),
            input_note="RGB /255, ImageNet mean/std, any size",
        )
        self.freeze()

    def networks(self) -> list[nn.Module]:
        return [self.model.backbone, self.model.classifier]

    def _forward(self, images: torch.Tensor) -> SegmentorOutput:
        x = normalise(images, IMAGENET_MEAN, IMAGENET_STD)
        stages = self.model.backbone(x)
        head_in = stages if isinstance(self.model, tvseg.LRASPP) else stages["out"]
        logits = self.model.classifier(head_in)
        hw = tuple(x.shape[-2:])
        return SegmentorOutput(stages[self._feature_key], logits, hw, hw)
