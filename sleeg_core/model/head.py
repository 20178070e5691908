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

from sleeg_core.common.config import from_dict as config_from_dict
from sleeg_core.common.errors import SleegError

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
    branches: the dilations of each block's 3×3 conv, one tuple of `depth` integers per branch,
        e.g. ((1, 2, 4),): one branch seeing 15 cells instead of 7, for the same weights and
        FLOPs; ((1, 1, 1), (1, 2, 4)): two heads side by side, each trained with its own loss,
        their outputs averaged. () → one branch of dilation 1, the paper's head.
    """

    in_channels: int
    width: int = DEFAULT_WIDTH
    depth: int = 3
    dropout: float = 0.1
    branches: tuple[tuple[int, ...], ...] = ()

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
        branches = tuple(tuple(b) for b in self.branches)
        for branch in branches:
            if len(branch) != self.depth or any(
                isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in branch
            ):
                raise SleegError(
                    f"each head branch must list {self.depth} dilations ≥ 1 (one per block), "
                    f"got {list(branch)}"
                )
        object.__setattr__(self, "branches", branches)

    def branch_dilations(self) -> tuple[tuple[int, ...], ...]:
        """The dilations of each branch's `depth` blocks."""
        return self.branches or ((1,) * self.depth,)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-friendly dict, e.g. {"in_channels": 128, "width": 64, ...}."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HeadConfig:
        """Inverse of `to_dict`; unknown keys or a missing `in_channels` raise SleegError."""
        return config_from_dict(cls, dict(data), "head")


class OoDHead(nn.Module):
    """Conv head on segmentor features: B×D×h×w → B×2×h×w (or B×2×H×W with `size`).

    With several branches it holds one single-branch `OoDHead` per branch (`self.branches`) and
    returns the mean of their outputs; `per_branch=True` returns them stacked, N×B×2×h×w, for
    training each with its own loss. A single branch keeps the plain layout (`blocks`,
    `classifier`), so head files from before branches load unchanged.
    """

    def __init__(
        self,
        in_channels: int,
        width: int = DEFAULT_WIDTH,
        depth: int = 3,
        dropout: float = 0.1,
        branches: tuple[tuple[int, ...], ...] = (),
    ) -> None:
        super().__init__()
        self.config = HeadConfig(in_channels, width, depth, dropout, branches)
        dilations = self.config.branch_dilations()
        if len(dilations) > 1:
            self.branches = nn.ModuleList(
                OoDHead(in_channels, width, depth, dropout, (d,)) for d in dilations
            )
            return
        layers: list[nn.Module] = []
        channels = in_channels
        for dilation in dilations[0]:
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
        return cls(config.in_channels, config.width, config.depth, config.dropout, config.branches)

    def forward(
        self,
        features: torch.Tensor,
        size: tuple[int, int] | None = None,
        per_branch: bool = False,
    ) -> torch.Tensor:
        """Head output at feature resolution, or bilinearly upsampled to `size` = (H, W); the
        mean over branches, or (`per_branch`) each branch's output stacked in a leading dim."""
        if features.ndim != 4 or features.shape[1] != self.config.in_channels:
            raise SleegError(
                f"OoD head expects B×{self.config.in_channels}×h×w features, "
                f"got shape {tuple(features.shape)}"
            )
        if len(self.config.branch_dilations()) > 1:
            out = torch.stack([branch(features) for branch in self.branches])
            out = out if per_branch else out.mean(0)
        else:
            out = self.classifier(self.dropout(self.blocks(features)))
            out = out.unsqueeze(0) if per_branch else out
        if size is not None and tuple(out.shape[-2:]) != tuple(size):
            out = F.interpolate(out.flatten(0, -4), size=size, mode="bilinear", align_corners=False)
            out = out.unflatten(0, (-1, features.shape[0])) if per_branch else out
        return out
