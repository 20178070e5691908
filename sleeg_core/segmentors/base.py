"""The frozen-segmentor interface that every segmentation network in sleeg implements.

A segmentor takes an RGB uint8 batch of any size and returns the features the OoD head reads and
the K class logits at input size. Its weights never change and its BatchNorm/Dropout layers stay in
eval mode whatever `.train()` is called on a parent module.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

# re-exported: the label space lives in sleeg_core.cityscapes
from sleeg_core.cityscapes import CITYSCAPES_CLASSES as CITYSCAPES_CLASSES
from sleeg_core.cityscapes import CITYSCAPES_PALETTE as CITYSCAPES_PALETTE

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class SegmentorInfo:
    """What a user (and the head file) needs to know about a segmentor."""

    name: str
    class_names: tuple[str, ...]
    feature_channels: int  # D of `features`
    feature_stride: int  # input pixels per feature pixel (features are at ceil(H/stride))
    feature_layer: str  # which inner tensor `features` is, e.g. "bottleneck3"
    input_note: str  # how the network wants its input (colour order, normalisation, size rules)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


@dataclass
class SegmentorOutput:
    """features: B×D×h×w float (at `feature_stride`); logits: B×K×H×W float at input size."""

    features: torch.Tensor
    logits: torch.Tensor


class Segmentor(nn.Module):
    """Base class: subclasses implement `_forward(images) -> SegmentorOutput` on a uint8 batch.

    `forward(images)` takes a B×3×H×W uint8 RGB tensor (any H, W ≥ 1) on the module's device and
    runs without gradients. The subclass pads/resizes to what its architecture needs and maps the
    logits back exactly to H×W.
    """

    info: SegmentorInfo

    def freeze(self) -> Segmentor:
        """Turn off gradients, put every submodule in eval mode for good, go channels-last."""
        for p in self.parameters():
            p.requires_grad_(False)
        super().train(False)
        return self.to(memory_format=torch.channels_last)

    def train(self, mode: bool = True) -> Segmentor:
        """Stays in eval mode: BatchNorm statistics and dropout of the segmentor never change."""
        return super().train(False)

    def forward(self, images: torch.Tensor) -> SegmentorOutput:
        check_image_batch(images)
        with torch.no_grad():
            return self._forward(images.contiguous(memory_format=torch.channels_last))

    def _forward(self, images: torch.Tensor) -> SegmentorOutput:
        raise NotImplementedError


def check_image_batch(images: torch.Tensor) -> None:
    """Raise ValueError unless `images` is a non-empty B×3×H×W uint8 tensor."""
    if images.dtype != torch.uint8:
        raise ValueError(f"segmentor input must be uint8 RGB, got dtype {images.dtype}")
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"segmentor input must be B×3×H×W, got shape {tuple(images.shape)}")
    if min(images.shape) == 0:
        raise ValueError(f"segmentor input is empty: shape {tuple(images.shape)}")


def normalise(
    images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]
) -> torch.Tensor:
    """uint8 RGB B×3×H×W → float (x/255 − mean)/std."""
    m = torch.tensor(mean, device=images.device).view(1, -1, 1, 1)
    s = torch.tensor(std, device=images.device).view(1, -1, 1, 1)
    return (images.float() / 255.0 - m) / s


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad B×C×H×W at the bottom and right, replicating the edge, so H and W divide `multiple`.

    Only bottom/right padding: the input's pixel (i, j) stays at (i, j), so cropping
    `[..., :H, :W]` maps any input-size output back exactly.
    """
    h, w = x.shape[-2:]
    pad_h, pad_w = -h % multiple, -w % multiple
    if pad_h == 0 and pad_w == 0:
        return x
    return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")


def upsample_to_input(x: torch.Tensor, input_hw: tuple[int, int], stride: int) -> torch.Tensor:
    """Map a B×C×⌈H/stride⌉×⌈W/stride⌉ map (e.g. a head's output) back to B×C×H×W.

    Bilinear ×stride (align_corners=False, as the segmentors upsample their own logits), then crop
    the bottom/right excess, which covers only the padding the segmentor added.
    """
    h, w = input_hw
    if x.shape[-2] * stride < h or x.shape[-1] * stride < w:
        raise ValueError(
            f"map of size {tuple(x.shape[-2:])} at stride {stride} cannot cover {h}×{w}"
        )
    up = F.interpolate(x, scale_factor=stride, mode="bilinear", align_corners=False)
    return up[..., :h, :w]
