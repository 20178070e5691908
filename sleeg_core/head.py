"""The learned OoD head: a small conv net on frozen segmentor features → 2 channels per pixel.

Channel 0 is "normal", channel 1 "anomaly" (raw scores, not probabilities). The paper uses
3 × (Conv3x3 → BatchNorm → ReLU) with 256 channels, then Dropout2d 0.1 (authors' code) and a 1×1
conv. Everything here is configurable; `HeadConfig` is what the head file stores.

Example:
    >>> import torch
    >>> head = OoDHead(in_channels=128).eval()
    >>> head(torch.zeros(1, 128, 8, 16), size=(64, 128)).shape
    torch.Size([1, 2, 64, 128])
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sleeg_core.config import from_dict as config_from_dict
from sleeg_core.errors import SleegError

# The paper uses 256 channels on 2048-channel DeepLab features. On ENet's bottleneck4 (64 ch at
# 1/4) a width of 32 costs 0.31× ENet's FLOPs (64: 0.92×, 256: 11×) and beats the entropy
# baseline (docs/accuracy.md). Every head file stores its own width.
DEFAULT_WIDTH = 32


@dataclass(frozen=True)
class HeadConfig:
    """Architecture of an `OoDHead`: what a head file needs to rebuild it.

    in_channels: D of the segmentor features; width: channels of each hidden block;
    depth: number of Conv3x3-BN-ReLU blocks (0: a single 1×1 conv on the features);
    dropout: Dropout2d probability before the final 1×1 conv (0 disables it);
    dilations: dilation of each block's 3×3 conv (e.g. (1, 2, 4): a 15-cell receptive field
        instead of 7, for the same weights and FLOPs); () → 1 in every block, the paper's head.
    """

    in_channels: int
    width: int = DEFAULT_WIDTH
    depth: int = 3
    dropout: float = 0.1
    dilations: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        for name in ("in_channels", "width", "depth"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise SleegError(f"head {name} must be an integer, got {value!r}")
        if self.in_channels < 1 or self.width < 1 or self.depth < 0:
            raise SleegError(
                f"head needs in_channels ≥ 1, width ≥ 1, depth ≥ 0; got in_channels="
                f"{self.in_channels}, width={self.width}, depth={self.depth}"
            )
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)):
            raise SleegError(f"head dropout must be a number, got {self.dropout!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise SleegError(f"head dropout must be in [0, 1), got {self.dropout}")
        dilations = tuple(self.dilations)
        if dilations and (
            len(dilations) != self.depth
            or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in dilations)
        ):
            raise SleegError(
                f"head dilations must be {self.depth} integers ≥ 1 (one per block) or empty, "
                f"got {list(dilations)}"
            )
        object.__setattr__(self, "dilations", dilations)

    def block_dilations(self) -> tuple[int, ...]:
        """The dilation of each of the `depth` blocks."""
        return self.dilations or (1,) * self.depth

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-friendly dict, e.g. {"in_channels": 128, "width": 64, ...}."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HeadConfig:
        """Inverse of `to_dict`; unknown keys or a missing `in_channels` raise SleegError."""
        return config_from_dict(cls, dict(data), "head")


class OoDHead(nn.Module):
    """Conv head on segmentor features: B×D×h×w → B×2×h×w (or B×2×H×W with `size`)."""

    def __init__(
        self,
        in_channels: int,
        width: int = DEFAULT_WIDTH,
        depth: int = 3,
        dropout: float = 0.1,
        dilations: tuple[int, ...] = (),
    ) -> None:
        super().__init__()
        self.config = HeadConfig(in_channels, width, depth, dropout, dilations)
        layers: list[nn.Module] = []
        channels = in_channels
        for dilation in self.config.block_dilations():
            layers += [
                nn.Conv2d(
                    channels, width, kernel_size=3, padding=dilation, dilation=dilation, bias=False
                ),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
            ]
            channels = width
        self.blocks = nn.Sequential(*layers)
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.classifier = nn.Conv2d(channels, 2, kernel_size=1)
        self.to(memory_format=torch.channels_last)  # as the segmentors' features (faster convs)

    @classmethod
    def from_config(cls, config: HeadConfig) -> OoDHead:
        return cls(config.in_channels, config.width, config.depth, config.dropout, config.dilations)

    def forward(self, features: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        """Head output at feature resolution, or bilinearly upsampled to `size` = (H, W)."""
        if features.ndim != 4 or features.shape[1] != self.config.in_channels:
            raise SleegError(
                f"OoD head expects B×{self.config.in_channels}×h×w features, "
                f"got shape {tuple(features.shape)}"
            )
        out = self.classifier(self.dropout(self.blocks(features)))
        if size is not None and tuple(out.shape[-2:]) != tuple(size):
            out = F.interpolate(out, size=size, mode="bilinear", align_corners=False)
        return out
