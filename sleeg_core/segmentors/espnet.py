"""ESPNet v1 (Mehta et al., ECCV 2018) as a frozen sleeg segmentor, for the official weights.

The module tree reproduces sacmehta/ESPNet `test/Model.py` `ESPNet(classes=20, p=2, q=8)` name for
name, so `pretrained/decoder/espnet_p_2_q_8.pth` (MIT) loads with strict=True. ESP blocks: a
reduce conv, five parallel 3×3 convs dilated 1, 2, 4, 8, 16 summed hierarchically, concatenated,
then BatchNorm (eps 1e-3) + per-channel PReLU.

Example:
    >>> seg = ESPNetSegmentor(weights=None)  # random weights; pass espnet_p_2_q_8.pth for real use
    >>> out = seg(torch.zeros(1, 3, 64, 96, dtype=torch.uint8))
    >>> tuple(out.features.shape), tuple(out.logits.shape)
    ((1, 256, 8, 12), (1, 19, 64, 96))
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

SIZE_MULTIPLE = 8  # three stride-2 stages and three exact 2× transposed convs
NUM_OUTPUTS = 20  # 19 Cityscapes train ids + 1 background/void channel (index 19)
BN_EPS = 1e-3
# normalisation of the official pipeline, in BGR order and 0..255 units (test/VisualizeResults.py)
MEAN_BGR = (72.3923111, 82.90893555, 73.15840149)
STD_BGR = (45.3192215, 46.15289307, 44.91483307)

# feature layer → (channels, stride)
FEATURE_LAYERS: dict[str, tuple[int, int]] = {
    "encoder.b3": (256, 8),
    "encoder.b2": (131, 4),
}


class _Conv(nn.Module):
    """Bias-free conv with 'same' padding (key `conv.weight`)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        padding = (kernel - 1) // 2 * dilation
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, padding, dilation, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class _BR(nn.Module):
    """BatchNorm → per-channel PReLU."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, eps=BN_EPS)
        self.act = nn.PReLU(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(x))


class _CBR(_BR):
    """Conv → BatchNorm → per-channel PReLU."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1) -> None:
        super().__init__(c_out)
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, (kernel - 1) // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(self.conv(x))


class _ESP(nn.Module):
    """ESP block: reduce (`c1`), split into dilated branches, hierarchical sum, merge, BN-PReLU.

    downsample: `c1` is a 3×3 stride-2 conv, no residual, and the norm is `bn` + `act` directly
    (the "DownSamplerB" layout); else `c1` is 1×1, an optional identity residual (`add`) and the
    norm is a `_BR` named `bn`.
    """

    def __init__(self, c_in: int, c_out: int, downsample: bool = False, add: bool = True) -> None:
        super().__init__()
        n = c_out // 5
        self.c1 = _Conv(c_in, n, 3, 2) if downsample else _Conv(c_in, n, 1)
        self.d1 = _Conv(n, c_out - 4 * n, 3)
        self.d2 = _Conv(n, n, 3, dilation=2)
        self.d4 = _Conv(n, n, 3, dilation=4)
        self.d8 = _Conv(n, n, 3, dilation=8)
        self.d16 = _Conv(n, n, 3, dilation=16)
        self.add = add and not downsample
        if downsample:
            self.bn: nn.Module = nn.BatchNorm2d(c_out, eps=BN_EPS)
            self.act: nn.Module = nn.PReLU(c_out)
        else:
            self.bn = _BR(c_out)
            self.act = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.c1(x)
        add1 = self.d2(r)
        add2 = add1 + self.d4(r)
        add3 = add2 + self.d8(r)
        add4 = add3 + self.d16(r)
        y = torch.cat([self.d1(r), add1, add2, add3, add4], dim=1)
        if self.add:
            y = y + x
        return self.act(self.bn(y))


def _avg_down(x: torch.Tensor, times: int) -> torch.Tensor:
    """The input image projected to stride 2**times by repeated 3×3 stride-2 average pooling."""
    for _ in range(times):
        x = F.avg_pool2d(x, 3, stride=2, padding=1)
    return x


class _Encoder(nn.Module):
    """ESPNet-C: the stride-8 encoder (its `classifier` is reused by the decoder)."""

    def __init__(self, classes: int, p: int, q: int) -> None:
        super().__init__()
        self.level1 = _CBR(3, 16, 3, 2)
        self.b1 = _BR(16 + 3)
        self.level2_0 = _ESP(16 + 3, 64, downsample=True)
        self.level2 = nn.ModuleList(_ESP(64, 64) for _ in range(p))
        self.b2 = _BR(128 + 3)
        self.level3_0 = _ESP(128 + 3, 128, downsample=True)
        self.level3 = nn.ModuleList(_ESP(128, 128) for _ in range(q))
        self.b3 = _BR(256)
        self.classifier = _Conv(256, classes, 1)


class ESPNet(nn.Module):
    """ESPNet with its light-weight decoder; `forward` returns named inner maps and the logits."""

    def __init__(self, classes: int = NUM_OUTPUTS, p: int = 2, q: int = 8) -> None:
        super().__init__()
        self.encoder = _Encoder(classes, p, q)
        self.level3_C = _Conv(128 + 3, classes, 1)
        self.br = nn.BatchNorm2d(classes, eps=BN_EPS)
        self.conv = _CBR(16 + classes, classes, 3)
        self.up_l3 = nn.Sequential(nn.ConvTranspose2d(classes, classes, 2, stride=2, bias=False))
        self.combine_l2_l3 = nn.Sequential(_BR(2 * classes), _ESP(2 * classes, classes, add=False))
        self.up_l2 = nn.Sequential(
            nn.ConvTranspose2d(classes, classes, 2, stride=2, bias=False), _BR(classes)
        )
        self.classifier = nn.ConvTranspose2d(classes, classes, 2, stride=2, bias=False)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x: B×3×H×W normalised, H and W divisible by 8 → {"encoder.b2", "encoder.b3", "logits"}.

        The logits (B×classes×H×W) come from three exact 2× transposed convs, no interpolation.
        """
        enc = self.encoder
        out0 = enc.level1(x)
        down1 = enc.level2_0(enc.b1(torch.cat([out0, _avg_down(x, 1)], dim=1)))
        y = down1
        for block in enc.level2:
            y = block(y)
        l2 = enc.b2(torch.cat([y, down1, _avg_down(x, 2)], dim=1))
        down2 = enc.level3_0(l2)
        y = down2
        for block in enc.level3:
            y = block(y)
        l3 = enc.b3(torch.cat([down2, y], dim=1))
        up3 = self.up_l3(self.br(enc.classifier(l3)))
        up2 = self.up_l2(self.combine_l2_l3(torch.cat([self.level3_C(l2), up3], dim=1)))
        logits = self.classifier(self.conv(torch.cat([up2, out0], dim=1)))
        return {"encoder.b2": l2, "encoder.b3": l3, "logits": logits}


class ESPNetSegmentor(Segmentor):
    """Frozen ESPNet (p=2, q=8) on Cityscapes, input of any size (trained at 1024×512).

    weights: path of the official `espnet_p_2_q_8.pth` state dict; None → random weights.
    feature_layer: the map returned as `features`: "encoder.b3" (default: 256 ch at 1/8, the
        encoder's last features, which its classifier reads) or "encoder.b2" (131 ch at 1/4).

    The network has 20 outputs: train ids 0..18 and a background/void channel 19. The returned
    logits keep only the 19 train-id channels (K = 19); the void channel is dropped, so an argmax
    never answers "void".

    Input as in the official pipeline: BGR order, (x − mean) / std with mean/std in 0..255 units,
    then divided by 255 once more (their quirk; the weights need it). The normalised tensor is
    padded at the bottom/right to a multiple of 8 by edge replication; logits are cropped back
    exactly to H×W and features to ⌈H/stride⌉×⌈W/stride⌉ (`upsample_to_input` in base maps a
    feature-resolution map back to H×W).
    """

    def __init__(self, weights: str | Path | None = None, feature_layer: str = "encoder.b3"):
        super().__init__()
        if feature_layer not in FEATURE_LAYERS:
            raise SleegError(
                f"ESPNet has no feature layer '{feature_layer}'; choose one of: "
                f"{', '.join(FEATURE_LAYERS)}"
            )
        self.feature_layer = feature_layer
        self.net = ESPNet(NUM_OUTPUTS, p=2, q=8)
        if weights is not None:
            load_strict(self.net, load_state_dict_file(weights), str(weights))
        mean_rgb = torch.tensor(MEAN_BGR[::-1]).view(1, 3, 1, 1)
        std_rgb = torch.tensor(STD_BGR[::-1]).view(1, 3, 1, 1)
        self.register_buffer("mean_rgb", mean_rgb, persistent=False)
        self.register_buffer("std255_rgb", std_rgb * 255.0, persistent=False)
        channels, stride = FEATURE_LAYERS[feature_layer]
        self.info = SegmentorInfo(
            name="espnet",
            class_names=CITYSCAPES_CLASSES,
            feature_channels=channels,
            feature_stride=stride,
            feature_layer=feature_layer,
            input_note=(
                "BGR, (x − mean)/std in 0..255 units then /255 again (official pipeline); "
                "any size (padded bottom/right to a multiple of 8 by edge replication, cropped "
                "back); trained at 1024×512; the 20th (void) output is dropped: K = 19"
            ),
        )
        self.freeze()

    def _forward(self, images: torch.Tensor) -> SegmentorOutput:
        h, w = images.shape[-2:]
        x = (images.float() - self.mean_rgb) / self.std255_rgb
        out = self.net(pad_to_multiple(x.flip(1), SIZE_MULTIPLE))  # RGB → BGR
        stride = self.info.feature_stride
        features = out[self.feature_layer][..., : math.ceil(h / stride), : math.ceil(w / stride)]
        logits = out["logits"][:, : len(CITYSCAPES_CLASSES)]  # at the padded input size
        return SegmentorOutput(features, logits, (h, w), tuple(logits.shape[-2:]))
