"""DABNet (Li, Zhao, Wang & Li, BMVC 2019) as a frozen sleeg segmentor, for Cityscapes weights.

The module tree reproduces Reagan1311/DABNet `DABNet(classes=19)` (MIT) name for name, so the
Cityscapes checkpoint `DABNet_cityscapes.pth` (a `{'epoch', 'model'}` dict, found in
IssamLaradji/CBStyling) loads with strict=True. A stride-8 encoder: three 3×3 convs, two
down-sampling blocks, 3 + 6 depth-wise asymmetric bottleneck (DAB) modules, the image
average-pooled to 1/2, 1/4 and 1/8 and concatenated at each scale, BatchNorm (eps 1e-3) +
per-channel PReLU after every conv. The classifier is a plain 1×1 conv (no BN or activation), so
the logits, and the energy −logsumexp of them, are ordinary.

Example:
    >>> seg = DABNetSegmentor(weights=None)  # random weights; real use: DABNet_cityscapes.pth
    >>> out = seg(torch.zeros(1, 3, 64, 96, dtype=torch.uint8))
    >>> tuple(out.features.shape), tuple(out.logits.shape)
    ((1, 259, 8, 12), (1, 19, 64, 96))
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from sleeg_core.common.errors import SleegError
from sleeg_core.common.state_dicts import load_state_dict_file, load_strict
from sleeg_core.data.labels import CITYSCAPES_CLASSES
from sleeg_core.segmentors.base import Segmentor, SegmentorInfo, SegmentorOutput, pad_to_multiple

SIZE_MULTIPLE = 8  # three stride-2 stages whose branches are concatenated: H and W must divide 8
LOGITS_STRIDE = 8
BN_EPS = 1e-3
# the training pipeline's mean in 0..255 units, given in BGR order; subtracted, no std
MEAN_BGR = (72.3924, 82.90902, 73.158325)
BLOCK_2_DILATIONS = (4, 4, 8, 8, 16, 16)

# feature layer → (channels, stride); "fused": bn_prelu_2 and bn_prelu_3 upsampled ×2, concatenated
FEATURE_LAYERS: dict[str, tuple[int, int]] = {
    "bn_prelu_3": (259, 8),
    "bn_prelu_2": (131, 4),
    "fused": (131 + 259, 4),
}


class _BNPReLU(nn.Module):
    """BatchNorm (eps 1e-3) → per-channel PReLU (keys `bn.*`, `acti.weight`)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, eps=BN_EPS)
        self.acti = nn.PReLU(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.acti(self.bn(x))


class _Conv(nn.Module):
    """Bias-free conv with 'same' padding (`conv`), optionally followed by `bn_prelu`."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: tuple[int, int] = (3, 3),
        stride: int = 1,
        dilation: tuple[int, int] = (1, 1),
        groups: int = 1,
        bn_prelu: bool = True,
    ) -> None:
        super().__init__()
        padding = ((kernel[0] - 1) // 2 * dilation[0], (kernel[1] - 1) // 2 * dilation[1])
        self.conv = nn.Conv2d(
            c_in, c_out, kernel, stride, padding, dilation, groups=groups, bias=False
        )
        self.bn_prelu = _BNPReLU(c_out) if bn_prelu else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return x if self.bn_prelu is None else self.bn_prelu(x)


class _DownSampling(nn.Module):
    """Halve the size: a 3×3 stride-2 conv, concatenated with a 2×2 max-pool of the input when
    the conv alone would not widen it to `c_out`, then BN-PReLU."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.with_pool = c_in < c_out
        self.conv3x3 = _Conv(
            c_in, c_out - c_in if self.with_pool else c_out, stride=2, bn_prelu=False
        )
        self.bn_prelu = _BNPReLU(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv3x3(x)
        if self.with_pool:
            y = torch.cat([y, F.max_pool2d(x, 2, 2)], dim=1)
        return self.bn_prelu(y)


class _DAB(nn.Module):
    """Depth-wise asymmetric bottleneck on n channels: BN-PReLU, 3×3 conv to n/2, two depth-wise
    3×1 + 1×3 branches (plain and dilated) summed, BN-PReLU, 1×1 conv to n, plus the input."""

    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__()
        half, d = channels // 2, dilation
        self.bn_relu_1 = _BNPReLU(channels)
        self.conv3x3 = _Conv(channels, half)
        self.dconv3x1 = _Conv(half, half, (3, 1), groups=half)
        self.dconv1x3 = _Conv(half, half, (1, 3), groups=half)
        self.ddconv3x1 = _Conv(half, half, (3, 1), dilation=(d, 1), groups=half)
        self.ddconv1x3 = _Conv(half, half, (1, 3), dilation=(1, d), groups=half)
        self.bn_relu_2 = _BNPReLU(half)
        self.conv1x1 = _Conv(half, channels, (1, 1), bn_prelu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv3x3(self.bn_relu_1(x))
        y = self.dconv1x3(self.dconv3x1(y)) + self.ddconv1x3(self.ddconv3x1(y))
        return self.conv1x1(self.bn_relu_2(y)) + x


def _dab_block(index: int, channels: int, dilations: tuple[int, ...]) -> nn.Sequential:
    """DAB modules named `DAB_Module_<index>_<i>`, as in the checkpoint."""
    block = nn.Sequential()
    for i, d in enumerate(dilations):
        block.add_module(f"DAB_Module_{index}_{i}", _DAB(channels, d))
    return block


class DABNet(nn.Module):
    """The DABNet network; `forward` returns its two feature maps and its logits by name."""

    def __init__(self, num_classes: int = 19) -> None:
        super().__init__()
        self.init_conv = nn.Sequential(_Conv(3, 32, stride=2), _Conv(32, 32), _Conv(32, 32))
        self.bn_prelu_1 = _BNPReLU(32 + 3)
        self.downsample_1 = _DownSampling(32 + 3, 64)
        self.DAB_Block_1 = _dab_block(1, 64, (2, 2, 2))
        self.bn_prelu_2 = _BNPReLU(64 + 64 + 3)
        self.downsample_2 = _DownSampling(64 + 64 + 3, 128)
        self.DAB_Block_2 = _dab_block(2, 128, BLOCK_2_DILATIONS)
        self.bn_prelu_3 = _BNPReLU(128 + 128 + 3)
        self.classifier = nn.Sequential(_Conv(128 + 128 + 3, num_classes, (1, 1), bn_prelu=False))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x: B×3×H×W mean-subtracted RGB, H and W divisible by 8 → {"bn_prelu_2" (1/4),
        "bn_prelu_3" (1/8), "logits" (1/8; the network upsamples them bilinearly ×8)}."""
        half = F.avg_pool2d(x, 3, stride=2, padding=1)
        quarter = F.avg_pool2d(half, 3, stride=2, padding=1)
        eighth = F.avg_pool2d(quarter, 3, stride=2, padding=1)
        y = self.bn_prelu_1(torch.cat([self.init_conv(x), half], dim=1))
        down1 = self.downsample_1(y)
        l2 = self.bn_prelu_2(torch.cat([self.DAB_Block_1(down1), down1, quarter], dim=1))
        down2 = self.downsample_2(l2)
        l3 = self.bn_prelu_3(torch.cat([self.DAB_Block_2(down2), down2, eighth], dim=1))
        return {"bn_prelu_2": l2, "bn_prelu_3": l3, "logits": self.classifier(l3)}


class DABNetSegmentor(Segmentor):
    """Frozen DABNet on Cityscapes (19 train ids), input of any size (trained at 2048×1024).

    weights: path of `DABNet_cityscapes.pth` (a checkpoint with `model`, or a plain state dict);
        None → random weights (tests, benchmarks).
    feature_layer: the map returned as `features`: "bn_prelu_3" (default: 259 ch at 1/8, what
        the classifier reads), "bn_prelu_2" (131 ch at 1/4) or "fused" (390 ch at 1/4:
        bn_prelu_2, then bn_prelu_3 upsampled bilinearly ×2, concatenated).

    Input as in the DABNet pipeline: RGB in 0..255 minus the per-channel mean, no std. The tensor
    is padded at the bottom/right to a multiple of 8 by edge replication; the stride-8 logits are
    upsampled bilinearly ×8 (align_corners=False) and cropped back exactly to H×W, the features
    to ⌈H/stride⌉×⌈W/stride⌉ (`upsample_to_input` in base maps a feature-resolution map back to
    H×W).
    """

    def __init__(self, weights: str | Path | None = None, feature_layer: str = "bn_prelu_3"):
        super().__init__()
        if feature_layer not in FEATURE_LAYERS:
            raise SleegError(
                f"DABNet has no feature layer '{feature_layer}'; choose one of: "
                f"{', '.join(FEATURE_LAYERS)}"
            )
        self.feature_layer = feature_layer
        self.net = DABNet(len(CITYSCAPES_CLASSES))
        if weights is not None:
            load_strict(self.net, load_state_dict_file(weights), str(weights))
        self.register_buffer(
            "mean_rgb", torch.tensor(MEAN_BGR[::-1]).view(1, 3, 1, 1), persistent=False
        )
        channels, stride = FEATURE_LAYERS[feature_layer]
        self.info = SegmentorInfo(
            name="dabnet",
            class_names=CITYSCAPES_CLASSES,
            feature_channels=channels,
            feature_stride=stride,
            feature_layer=feature_layer,
            input_note=(
                "RGB 0..255 minus the mean (R, G, B) = (73.16, 82.91, 72.39), no std; any size "
                "(padded bottom/right to a multiple of 8 by edge replication, cropped back); "
                "trained at 2048×1024"
            ),
        )
        self.freeze()

    def _forward(self, images: torch.Tensor) -> SegmentorOutput:
        h, w = images.shape[-2:]
        out = self.net(pad_to_multiple(images.float() - self.mean_rgb, SIZE_MULTIPLE))
        if self.feature_layer == "fused":
            l2 = out["bn_prelu_2"]
            l3 = F.interpolate(out["bn_prelu_3"], size=l2.shape[-2:], mode="bilinear")
            features = torch.cat([l2, l3], dim=1)
        else:
            features = out[self.feature_layer]
        stride = self.info.feature_stride
        features = features[..., : math.ceil(h / stride), : math.ceil(w / stride)]
        coarse = out["logits"]
        upsampled = (LOGITS_STRIDE * coarse.shape[-2], LOGITS_STRIDE * coarse.shape[-1])
        return SegmentorOutput(features, coarse, (h, w), upsampled)
