"""ENet (Paszke et al. 2016) as a frozen sleeg segmentor, for zh320's Cityscapes weights.

The module tree reproduces zh320/realtime-semantic-segmentation-pytorch `ENet(num_class=19,
act_type='prelu', upsample_type='deconvolution')` name for name, so its released `enet.pth`
(Apache-2.0, mIoU 71.3 on Cityscapes val) loads with strict=True. Inner conv blocks use ReLU; the
sum of every bottleneck's two branches, the initial block and the classifier use a one-parameter
PReLU. Training-only Dropout layers are left out (identity in eval mode; they have no weights).

Example:
    >>> seg = ENetSegmentor(weights=None)  # random weights; pass the path of enet.pth for real use
    >>> out = seg(torch.zeros(1, 3, 64, 96, dtype=torch.uint8))
    >>> tuple(out.features.shape), tuple(out.logits.shape)
    ((1, 128, 8, 12), (1, 19, 64, 96))
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

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
    pad_to_multiple,
)

SIZE_MULTIPLE = 8  # three 2× max-pool/unpool stages: H and W must divide 8

# feature layer → (channels, stride)
FEATURE_LAYERS: dict[str, tuple[int, int]] = {
    "bottleneck2": (128, 8),
    "bottleneck3": (128, 8),
    "bottleneck4": (64, 4),
    "bottleneck5": (16, 2),
}
LOGITS_SOURCES = ("output", "pre_activation")


class _PReLU(nn.Module):
    """One-parameter PReLU stored as `<name>.activation.weight`, as in the checkpoint."""

    def __init__(self) -> None:
        super().__init__()
        self.activation = nn.PReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(x)


def _conv_bn(
    c_in: int,
    c_out: int,
    kernel: int | tuple[int, int] = 3,
    stride: int = 1,
    dilation: int = 1,
    act: nn.Module | None = None,
) -> nn.Sequential:
    """Conv (no bias, 'same' padding) → BatchNorm → activation (ReLU unless given)."""
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    padding = ((kh - 1) // 2 * dilation, (kw - 1) // 2 * dilation)
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, (kh, kw), stride, padding, dilation, bias=False),
        nn.BatchNorm2d(c_out),
        act if act is not None else nn.ReLU(),
    )


class _Deconv(nn.Module):
    """3×3 stride-2 transposed conv that exactly doubles the size (key `up_conv.weight`)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.up_conv = nn.ConvTranspose2d(
            channels, channels, 3, stride=2, padding=1, output_padding=1, bias=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up_conv(x)


class _Bottleneck(nn.Module):
    """ENet bottleneck: residual branch 1×1 → conv → 1×1 (width in/4), summed, then PReLU.

    kind: "regular", "dilate", "asymmetric" (5×1 then 1×5), "downsampling" (max-pool shortcut,
    returns the pooling indices) or "upsampling" (max-unpool shortcut with given indices).
    """

    def __init__(self, c_in: int, c_out: int, kind: str = "regular", dilation: int = 1) -> None:
        super().__init__()
        self.kind = kind
        hid = c_in // 4
        if kind == "downsampling":
            self.left_pool = nn.MaxPool2d(2, 2, return_indices=True)
            self.left_conv = _conv_bn(c_in, c_out, 1)
            right: list[nn.Module] = [_conv_bn(c_in, hid, 3, stride=2), _conv_bn(hid, hid)]
        elif kind == "upsampling":
            self.left_conv = _conv_bn(c_in, c_out, 1)
            self.left_unpool = nn.MaxUnpool2d(2, 2)
            right = [_conv_bn(c_in, hid, 1), _Deconv(hid)]
        elif kind == "asymmetric":
            right = [_conv_bn(c_in, hid, 1), _conv_bn(hid, hid, (5, 1)), _conv_bn(hid, hid, (1, 5))]
        else:
            right = [_conv_bn(c_in, hid, 1), _conv_bn(hid, hid, dilation=dilation)]
        self.right_init_conv = nn.Sequential(*right)
        self.right_last_conv = nn.Sequential(nn.Conv2d(hid, c_out, 1, bias=False))
        self.act = _PReLU()

    def forward(
        self, x: torch.Tensor, indices: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(output, pooling indices for "downsampling" else None)."""
        right = self.right_last_conv(self.right_init_conv(x))
        if self.kind == "downsampling":
            left, indices = self.left_pool(x)
            return self.act(self.left_conv(left) + right), indices
        if self.kind == "upsampling":
            left = self.left_unpool(self.left_conv(x), indices, output_size=right.shape[-2:])
            return self.act(left + right), None
        return self.act(x + right), None


class _Stage(nn.Module):
    """bottleneck1–3: optional `conv_pool` (downsampling) then `conv_regular` blocks."""

    def __init__(
        self, c_in: int, c_out: int, blocks: list[tuple[str, int]], downsample: bool
    ) -> None:
        super().__init__()
        self.conv_pool = _Bottleneck(c_in, c_out, "downsampling") if downsample else None
        self.conv_regular = nn.ModuleList(_Bottleneck(c_out, c_out, k, d) for k, d in blocks)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        indices = None
        if self.conv_pool is not None:
            x, indices = self.conv_pool(x)
        for block in self.conv_regular:
            x, _ = block(x)
        return x, indices


class _UpStage(nn.Module):
    """bottleneck4–5: `conv_unpool` then `conv_regular` (and `conv_extra` in bottleneck4)."""

    def __init__(self, c_in: int, c_out: int, extra: bool) -> None:
        super().__init__()
        self.conv_unpool = _Bottleneck(c_in, c_out, "upsampling")
        self.conv_regular = _Bottleneck(c_out, c_out)
        self.conv_extra = _Bottleneck(c_out, c_out) if extra else None

    def forward(self, x: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        x, _ = self.conv_unpool(x, indices)
        x, _ = self.conv_regular(x)
        if self.conv_extra is not None:
            x, _ = self.conv_extra(x)
        return x


class _Initial(nn.Module):
    """3×3 stride-2 conv to 13 channels, concatenated with a 3×3 stride-2 max-pool of the input."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = _conv_bn(3, 13, 3, stride=2, act=_PReLU())
        self.pool = nn.MaxPool2d(3, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.conv(x), self.pool(x)], dim=1)


class _FullConv(nn.Module):
    """Classifier at stride 2: 1×1 conv → BN → PReLU (`up_conv.0`); the caller upsamples ×2."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.up_conv = nn.Sequential(_conv_bn(16, num_classes, 1, act=_PReLU()))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(scores after BN, scores after BN + PReLU)."""
        conv, bn, prelu = self.up_conv[0]
        pre = bn(conv(x))
        return pre, prelu(pre)


_DILATED = [
    ("regular", 1),
    ("dilate", 2),
    ("asymmetric", 1),
    ("dilate", 4),
    ("regular", 1),
    ("dilate", 8),
    ("asymmetric", 1),
    ("dilate", 16),
]


class ENet(nn.Module):
    """The ENet network; `forward` returns every stage's output by name (see ENetSegmentor)."""

    def __init__(self, num_classes: int = 19) -> None:
        super().__init__()
        self.initial = _Initial()
        self.bottleneck1 = _Stage(16, 64, [("regular", 1)] * 4, downsample=True)
        self.bottleneck2 = _Stage(64, 128, _DILATED, downsample=True)
        self.bottleneck3 = _Stage(128, 128, _DILATED, downsample=False)
        self.bottleneck4 = _UpStage(128, 64, extra=True)
        self.bottleneck5 = _UpStage(64, 16, extra=False)
        self.fullconv = _FullConv(num_classes)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x: B×3×H×W normalised, H and W divisible by 8 → named stage outputs.

        "pre_activation" and "output" are the class scores at stride 2 before and after the final
        PReLU; the network's logits are "output" upsampled bilinearly ×2.
        """
        out = {}
        x, indices1 = self.bottleneck1(self.initial(x))
        out["bottleneck2"], indices2 = self.bottleneck2(x)
        out["bottleneck3"], _ = self.bottleneck3(out["bottleneck2"])
        out["bottleneck4"] = self.bottleneck4(out["bottleneck3"], indices2)
        out["bottleneck5"] = self.bottleneck5(out["bottleneck4"], indices1)
        out["pre_activation"], out["output"] = self.fullconv(out["bottleneck5"])
        return out


class ENetSegmentor(Segmentor):
    """Frozen ENet on Cityscapes (19 train ids), input of any size.

    weights: path of zh320's `enet.pth` (a checkpoint with `state_dict`, or a plain state dict);
        None → random weights (tests, benchmarks).
    feature_layer: the inner map returned as `features`: "bottleneck3" (default, 128 ch at 1/8,
        the end of the encoder), "bottleneck2" (128 ch, 1/8), "bottleneck4" (64 ch, 1/4) or
        "bottleneck5" (16 ch, 1/2).
    logits_source: "output" (the network's logits: after the final BN + PReLU) or
        "pre_activation" (after the BN, before the PReLU); both upsampled bilinearly ×2
        (align_corners=False) as the network does.

    The image is normalised (RGB /255, ImageNet mean/std), then padded at the bottom and right to
    a multiple of 8 by replicating the edge pixels of the *normalised* tensor; the logits are
    cropped back exactly to H×W and the features to ⌈H/stride⌉×⌈W/stride⌉ (the cells that overlap
    the image; the last row/column may also see padding). `upsample_to_input` in
    sleeg_core.segmentors.base maps a map at feature resolution back to H×W.
    """

    def __init__(
        self,
        weights: str | Path | None = None,
        feature_layer: str = "bottleneck3",
        logits_source: str = "output",
    ) -> None:
        super().__init__()
        if feature_layer not in FEATURE_LAYERS:
            raise SleegError(
                f"ENet has no feature layer '{feature_layer}'; choose one of: "
                f"{', '.join(FEATURE_LAYERS)}"
            )
        if logits_source not in LOGITS_SOURCES:
            raise SleegError(
                f"unknown ENet logits_source '{logits_source}'; choose one of: "
                f"{', '.join(LOGITS_SOURCES)}"
            )
        self.feature_layer = feature_layer
        self.logits_source = logits_source
        self.net = ENet(len(CITYSCAPES_CLASSES))
        if weights is not None:
            load_strict(self.net, load_state_dict_file(weights), str(weights))
        channels, stride = FEATURE_LAYERS[feature_layer]
        self.info = SegmentorInfo(
            name="enet",
            class_names=CITYSCAPES_CLASSES,
            feature_channels=channels,
            feature_stride=stride,
            feature_layer=feature_layer,
            input_note=(
                "RGB /255, ImageNet mean/std, any size (padded bottom/right to a multiple of 8 "
                f"by edge replication, cropped back); trained at 2048×1024; logits: {logits_source}"
            ),
        )
        self.freeze()

    def _forward(self, images: torch.Tensor) -> SegmentorOutput:
        h, w = images.shape[-2:]
        x = pad_to_multiple(normalise(images, IMAGENET_MEAN, IMAGENET_STD), SIZE_MULTIPLE)
        out = self.net(x)
        coarse = out[self.logits_source]  # stride 2; the network upsamples it bilinearly ×2
        stride = self.info.feature_stride
        features = out[self.feature_layer][..., : math.ceil(h / stride), : math.ceil(w / stride)]
        upsampled = (2 * coarse.shape[-2], 2 * coarse.shape[-1])
        return SegmentorOutput(features, coarse, (h, w), upsampled)
