"""The frozen-segmentor interface that every segmentation network in sleeg implements.

A segmentor takes an RGB uint8 batch of any size and returns the features the OoD head reads and
its K class logits (at its own resolution; at input size on demand, see `SegmentorOutput`). Its
weights never change and its BatchNorm/Dropout layers stay in eval mode whatever `.train()` is
called on a parent module.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

# re-exported: the torch.compile modes live in sleeg_core.common.choices
from sleeg_core.common.choices import COMPILE_MODES as COMPILE_MODES
from sleeg_core.common.choices import CUDA_GRAPH_MODES as CUDA_GRAPH_MODES
from sleeg_core.common.errors import SleegError

# re-exported: the label space lives in sleeg_core.data.labels
from sleeg_core.data.labels import CITYSCAPES_CLASSES as CITYSCAPES_CLASSES
from sleeg_core.data.labels import CITYSCAPES_PALETTE as CITYSCAPES_PALETTE

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
    """What a segmentor computes for a B×3×H×W batch.

    features: B×D×h×w float at `feature_stride`. coarse_logits: B×K×hc×wc, the class scores at
    the network's own resolution; bilinearly resized (align_corners=False) to `upsampled_hw` and
    cropped to the input's `input_hw` they are the network's logits. `logits` does that on first
    use; `train_ids()` gets the same argmax while resizing only the pixels near class borders, so
    callers that need no full-resolution logits never pay for them.
    """

    features: torch.Tensor
    coarse_logits: torch.Tensor
    input_hw: tuple[int, int]
    upsampled_hw: tuple[int, int]
    # `logits` once computed; not functools.cached_property, whose lock (Python 3.11)
    # torch.compile cannot trace
    _logits: torch.Tensor | None = field(default=None, init=False, repr=False)

    @property
    def logits(self) -> torch.Tensor:
        """B×K×H×W logits at input size."""
        if self._logits is None:
            coarse, (h, w) = self.coarse_logits, self.input_hw
            if tuple(coarse.shape[-2:]) != self.upsampled_hw:
                coarse = F.interpolate(coarse, size=self.upsampled_hw, mode="bilinear")
            self._logits = coarse[..., :h, :w]
        return self._logits

    def train_ids(self) -> torch.Tensor:
        """B×H×W uint8 argmax of `logits`: of the logits themselves when they are computed
        already or inside `torch.compile` (which fuses the resizing into the argmax, while the
        data-dependent indexing of `upsampled_argmax` would split the graph), else by
        `upsampled_argmax`."""
        if self._logits is not None or torch.compiler.is_compiling():
            return self.logits.max(1).indices.to(torch.uint8)  # = argmax, ~3× faster on CPU
        return upsampled_argmax(self.coarse_logits, self.upsampled_hw, self.input_hw)


def upsampled_argmax(
    coarse: torch.Tensor, size: tuple[int, int], crop: tuple[int, int]
) -> torch.Tensor:
    """argmax over dim 1 of `F.interpolate(coarse, size, mode="bilinear")[..., :crop_h, :crop_w]`
    as B×H×W uint8 (K ≤ 256 classes), without interpolating all K channels everywhere.

    A bilinear pixel is a convex combination of (up to) four coarse pixels; when all four have the
    same argmax c, so does the combination. Only pixels whose four sources disagree (near class
    borders) are interpolated, with PyTorch's source-index rule. Equal to the full computation up
    to float rounding in near-ties.
    """
    (height, width), (hc, wc) = crop, coarse.shape[-2:]
    coarse_ids = coarse.max(1).indices
    if (hc, wc) == tuple(size):
        return coarse_ids[..., :height, :width].to(torch.uint8)
    coarse_ids = coarse_ids.to(torch.uint8)
    # uniform[y, x]: coarse pixels (y, x), (y + 1, x), (y, x + 1), (y + 1, x + 1) agree, the
    # +1 clamped at the last row/column as the bilinear sources are
    below = torch.cat([coarse_ids[:, 1:], coarse_ids[:, -1:]], 1)
    pair = torch.stack([coarse_ids, below])
    right = torch.cat([pair[..., 1:], pair[..., -1:]], -1)
    uniform = ((pair == coarse_ids) & (right == coarse_ids)).all(0)
    y0, y1, wy = _bilinear_sources(hc, size[0], height, coarse.device)
    x0, x1, wx = _bilinear_sources(wc, size[1], width, coarse.device)
    ids = coarse_ids[:, y0].index_select(2, x0)
    mixed = ~uniform[:, y0].index_select(2, x0)
    b, i, j = mixed.nonzero(as_tuple=True)
    top, bottom, left, right = y0[i], y1[i], x0[j], x1[j]
    ly, lx = wy[i, None], wx[j, None]
    values = (1 - ly) * (
        (1 - lx) * coarse[b, :, top, left] + lx * coarse[b, :, top, right]
    ) + ly * ((1 - lx) * coarse[b, :, bottom, left] + lx * coarse[b, :, bottom, right])
    ids[b, i, j] = values.argmax(1).to(torch.uint8)
    return ids


def _bilinear_sources(
    in_size: int, out_size: int, count: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For output indices 0..count−1 of a bilinear resize in_size → out_size (align_corners=False):
    the lower and upper source index and the upper one's weight, as PyTorch computes them."""
    scale = in_size / out_size
    source = ((torch.arange(count, device=device, dtype=torch.float32) + 0.5) * scale - 0.5).clamp(
        min=0
    )
    lower = source.long()
    upper = (lower + 1).clamp(max=in_size - 1)
    return lower, upper, source - lower


class Segmentor(nn.Module):
    """Base class: subclasses implement `_forward(images) -> SegmentorOutput` on a uint8 batch.

    `forward(images)` takes a B×3×H×W uint8 RGB tensor (any H, W ≥ 1) on the module's device and
    runs without gradients. The subclass pads/resizes to what its architecture needs and says
    (`upsampled_hw`, cropped to `input_hw`) how its coarse logits map back exactly to H×W.
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

    def networks(self) -> list[nn.Module]:
        """The submodules that do the heavy work: what `compile_networks` compiles."""
        return [self.net]

    def compile_networks(self, mode: str = "default") -> Segmentor:
        """`torch.compile` the networks in place for static shapes (each new input size compiles
        again on its first forward), e.g. for training; inference compiles segmentor, head and
        scores as one (`AnomalySegmenter.compile_networks`). SleegError for a bad mode."""
        check_compile_mode(mode)
        for part in self.networks():
            part.compile(mode=mode, dynamic=False)
        return self


def check_compile_mode(mode: str) -> None:
    """Raise SleegError unless `mode` is one of COMPILE_MODES."""
    if mode not in COMPILE_MODES:
        raise SleegError(f"unknown compile mode '{mode}'; choose one of {', '.join(COMPILE_MODES)}")


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
    """uint8 RGB B×3×H×W → float (x/255 − mean)/std.

    The per-channel constants are made on the CPU and copied without blocking, so a GPU step
    never waits for the host here.
    """
    scale = torch.tensor([1 / (255.0 * s) for s in std])
    shift = torch.tensor([m / s for m, s in zip(mean, std, strict=True)])
    scale = scale.to(images.device, non_blocking=True)
    shift = shift.to(images.device, non_blocking=True)
    return images.float().mul_(scale.view(1, -1, 1, 1)).sub_(shift.view(1, -1, 1, 1))  # one buffer


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
    # NCHW: for a few channels (a head's 2) 3× faster than channels-last, as is what follows
    up = F.interpolate(x.contiguous(), scale_factor=stride, mode="bilinear", align_corners=False)
    return up[..., :h, :w]
