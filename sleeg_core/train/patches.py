"""Pseudo-anomaly rendering: paste object-like patches cut from other images into a batch.

SLEEG trains its OoD head on normal images only; the anomalies it learns from are made here. For
each image, `n_patches` rectangles are cut from *other* images of the batch, each is masked to a
shape and pasted at a random position fully inside the image; later pastes overwrite earlier ones.
A batch of one image takes its crops from a `PatchBank` of crops of earlier batches; while that
bank is empty it takes them from the image itself, at a place that does not overlap the paste
position whenever the image has room for that (bank crops larger than the image are cut to its
size from their top-left corner). Shapes (`PatchConfig.shape`):

- "convex_harris" (paper): the convex hull of the crop's Harris corners. Fewer than 3 corners, or
  corners so close to collinear that no three of them span 1 % of the crop, give the full
  rectangle instead.
- "square": the full rectangle.
- "random_hull" (authors' code): the convex hull of `n_random_points` uniform points in the crop.

Crop areas are drawn uniformly or log-uniformly (`area_sampling`) from `area_range`. A fraction
`road_fraction` of the patches is centred on a pixel of a given region (in training: where the
frozen segmentor sees road in the clean image), so the head also learns objects lying on the
road; the others go anywhere.

A fraction `noise_fraction` of the patches keep their shape but are filled with Gaussian noise of
the batch's per-channel mean and standard deviation, clipped to the batch's value range.

`feather` > 0 softens the outer edge of the pasted pixels: each one is blended with the image under
it by alpha = 2·Φ(d/σ) − 1 of its distance d inside the pasted region's edge (σ = `feather` px,
computed as a Gaussian blur of the region), so a patch fades in over about 2σ pixels instead of
showing a one-pixel seam; the pasted label is then the pixels with alpha ≥ 0.5. With 0 (the
paper) every patch has a hard edge.

Per-pixel work runs on tensors on the images' device, for all the batch's patches at once (crops
stacked to the largest size); every random number comes from the given torch.Generator, so the
same seed (and bank contents) gives the same output.

Example:
    >>> g = torch.Generator().manual_seed(0)
    >>> out = render_patches(torch.randint(0, 256, (2, 3, 64, 128), dtype=torch.uint8), g)
    >>> out.images.shape, out.pasted.shape
    (torch.Size([2, 3, 64, 128]), torch.Size([2, 64, 128]))
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import torch

from sleeg_core.common.errors import SleegError
from sleeg_core.data.images import MIN_SIDE
from sleeg_core.train.patch_compositing import cut_crops, feather_edges, paste
from sleeg_core.train.patch_config import PatchConfig
from sleeg_core.train.patch_shapes import shape_masks, stack_crops

MIN_PATCH_SIDE = 3  # smallest crop side in pixels (a hull needs room for a triangle)


@dataclass
class PatchedBatch:
    """images: the composited batch (input dtype and device); pasted: B×H×W bool, the pixels that
    hold a pasted patch after all pastes."""

    images: torch.Tensor
    pasted: torch.Tensor


class PatchBank:
    """A queue of 3×h×w crops from past batches (kept on their device); the oldest leave first."""

    def __init__(self, size: int = 30) -> None:
        self._crops: deque[torch.Tensor] = deque(maxlen=size)

    def __len__(self) -> int:
        return len(self._crops)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self._crops[index]

    def push(self, crop: torch.Tensor) -> None:
        self._crops.append(crop.detach().clone())

    def state_dict(self) -> dict[str, list[torch.Tensor]]:
        """The crops, oldest first (CPU copies), for training checkpoints."""
        return {"crops": [c.cpu() for c in self._crops]}

    def load_state_dict(self, state: dict[str, list[torch.Tensor]], device: torch.device) -> None:
        """Replace the crops with those of `state_dict()`, moved to `device`."""
        self._crops.clear()
        for crop in state["crops"]:
            self._crops.append(crop.to(device))


class PatchRenderer:
    """`render_patches` with a config and the PatchBank it keeps between calls (for training)."""

    def __init__(self, config: PatchConfig | None = None) -> None:
        self.config = config or PatchConfig()
        self.bank = PatchBank(self.config.bank_size)

    def __call__(
        self, images: torch.Tensor, generator: torch.Generator, road: torch.Tensor | None = None
    ) -> PatchedBatch:
        return render_patches(images, generator, self.config, self.bank, road)


def render_patches(
    images: torch.Tensor,
    generator: torch.Generator,
    config: PatchConfig | None = None,
    bank: PatchBank | None = None,
    road: torch.Tensor | None = None,
) -> PatchedBatch:
    """Paste `config.n_patches` pseudo-anomalies into each image of a B×3×H×W batch.

    `road` (B×H×W bool, optional): a share `config.road_fraction` of the patches is centred on one
    of its pixels, drawn uniformly (an image without such pixels places them anywhere).

    Crops come from the other images of the batch (their original pixels, never the pasted
    result). With B = 1 they come from `bank`; with no bank or an empty one, from the image itself
    at a place not overlapping the paste position when there is room. When `bank` is given, each
    image then adds `bank_crops_per_image` fresh crops to it. The input is not modified.

    Only the patch geometry is drawn per patch (Python numbers); cutting, shaping and pasting run
    as a fixed number of tensor operations for the whole batch, however many patches it has. With
    images on a GPU and a CPU `generator`, nothing waits for the GPU (unless `road` is given): the
    rendering is queued behind the GPU's earlier work instead of stalling on it.
    """
    config = config or PatchConfig()
    _check_batch(images)
    batch, _, height, width = images.shape
    draws = _Draws.of(batch, config, generator)
    noise_stats = _noise_stats(images) if config.noise_fraction > 0 else None
    centres = _RegionCentres(road, generator, config) if road is not None else None
    use_bank = batch == 1 and bank is not None and len(bank) > 0
    layout = _lay_out(images.shape, draws.patches, config, bank if use_bank else None, centres)
    if not layout.rows:
        out = images.clone()
        pasted = torch.zeros(batch, height, width, dtype=torch.bool, device=images.device)
    else:
        noise = [noise_stats is not None and u < config.noise_fraction for u in layout.noise_draws]
        crops, sizes, table = _cut(images, layout)
        points = None
        if draws.hull_points is not None:
            points = _to_device(draws.hull_points.flatten(0, 1), images.device)
        masks = shape_masks(crops.float(), sizes, config, points)
        if noise_stats is not None and any(noise):
            crops = _with_noise(crops, torch.tensor(noise), noise_stats, generator)
        out, pasted = paste(images, crops, masks, table[:, 0], table[:, 1:3])
        if config.feather > 0:
            out, pasted = feather_edges(images, out, pasted, config.feather)
    if bank is not None:
        _fill_bank(bank, images, draws.bank, config)
    return PatchedBatch(out, pasted)


@dataclass
class _Draws:
    """The uniform numbers of one `render_patches` call that do not depend on the images."""

    # B×n_patches×8: area, aspect, source, source y, source x, paste y, paste x, noise
    patches: list[list[list[float]]]
    hull_points: torch.Tensor | None  # B×n_patches×n_random_points×2 ("random_hull" only)
    bank: list[list[list[float]]]  # B×bank_crops_per_image×4: area, aspect, y, x

    @classmethod
    def of(cls, batch: int, config: PatchConfig, generator: torch.Generator) -> _Draws:
        """Drawn in this order: patches, hull points, bank crops."""
        patches = _uniform(generator, (batch, config.n_patches, 8)).tolist()
        hull_points = None
        if config.shape == "random_hull":
            hull_points = _uniform(generator, (batch, config.n_patches, config.n_random_points, 2))
        bank = _uniform(generator, (batch, config.bank_crops_per_image, 4)).tolist()
        return cls(patches, hull_points, bank)


@dataclass
class _Layout:
    """Where each patch of a batch comes from and goes to."""

    rows: list[tuple[int, ...]]  # per patch: image, dy, dx, source, sy, sx, h, w
    bank_crops: list[torch.Tensor]  # per patch, when the crops come from a bank
    noise_draws: list[float]  # per patch: below `noise_fraction` → filled with noise


def _lay_out(
    shape: torch.Size,
    draws: list[list[list[float]]],
    config: PatchConfig,
    bank: PatchBank | None,
    centres: _RegionCentres | None,
) -> _Layout:
    """The layout of every patch of a B×3×H×W batch; crops from `bank` when one is given."""
    batch, _, height, width = shape
    layout = _Layout([], [], [])
    for i in range(batch):
        for u_area, u_aspect, u_src, u_sy, u_sx, u_dy, u_dx, u_noise in draws[i]:
            if bank is not None:
                layout.bank_crops.append(_bank_crop(bank, u_src, height, width))
                ch, cw = layout.bank_crops[-1].shape[-2:]
            else:
                ch, cw = _crop_size(u_area, u_aspect, config, height, width)
            dy, dx = _position(u_dy, height - ch), _position(u_dx, width - cw)
            if centres is not None:
                dy, dx = centres.place(i, (dy, dx), (ch, cw), (height, width))
            source, sy, sx = i, 0, 0
            if bank is None:
                source, sy, sx = _source(i, (u_src, u_sy, u_sx), (dy, dx), (ch, cw), shape)
            layout.rows.append((i, dy, dx, source, sy, sx, ch, cw))
            layout.noise_draws.append(u_noise)
    return layout


def _bank_crop(bank: PatchBank, u: float, height: int, width: int) -> torch.Tensor:
    """A crop of `bank` drawn by `u`, cut to the image's size from its top-left corner."""
    return bank[min(int(u * len(bank)), len(bank) - 1)][:, :height, :width]


def _source(
    i: int,
    draws: tuple[float, float, float],
    paste_at: tuple[int, int],
    size: tuple[int, int],
    shape: torch.Size,
) -> tuple[int, int, int]:
    """(image, y, x) that image i's patch of `size` pasted at `paste_at` is cut from: another
    image of the batch, or in a batch of one, the image itself away from the paste position."""
    u_src, u_sy, u_sx = draws
    batch, _, height, width = shape
    (ch, cw) = size
    if batch > 1:
        source = (i + 1 + min(int(u_src * (batch - 1)), batch - 2)) % batch
        return source, _position(u_sy, height - ch), _position(u_sx, width - cw)
    return (i, *_position_elsewhere(u_sy, u_sx, paste_at, size, (height, width)))


def _cut(images: torch.Tensor, layout: _Layout) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(P×3×Hm×Wm crops in the images' dtype, P×2 sizes, P×8 layout table on the images'
    device) of a layout with at least one patch."""
    table = _to_device(torch.tensor(layout.rows), images.device)  # P×8
    sizes = table[:, 6:8]
    if layout.bank_crops:
        crops = stack_crops([c.to(images.device) for c in layout.bank_crops])[0]
        return crops.to(images.dtype), sizes, table
    largest = max(row[6] for row in layout.rows), max(row[7] for row in layout.rows)
    return cut_crops(images, table[:, 3], table[:, 4:6], sizes, largest), sizes, table


def _fill_bank(
    bank: PatchBank, images: torch.Tensor, draws: list[list[list[float]]], config: PatchConfig
) -> None:
    """Push each image's `bank_crops_per_image` fresh crops (placed by `draws`) to `bank`."""
    height, width = images.shape[-2:]
    for i in range(images.shape[0]):
        for u_area, u_aspect, u_y, u_x in draws[i]:
            ch, cw = _crop_size(u_area, u_aspect, config, height, width)
            y, x = _position(u_y, height - ch), _position(u_x, width - cw)
            bank.push(images[i, :, y : y + ch, x : x + cw])


def _check_batch(images: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise SleegError(f"patch rendering needs a B×3×H×W tensor, got {shape}")
    if images.dtype != torch.uint8 and not images.is_floating_point():
        raise SleegError(f"patch rendering needs uint8 or float images, got {images.dtype}")
    if min(images.shape[-2:]) < MIN_SIDE or images.shape[0] < 1:
        raise SleegError(
            f"patch rendering needs at least one image of at least {MIN_SIDE}×{MIN_SIDE} pixels, "
            f"got {tuple(images.shape)}"
        )


def _uniform(generator: torch.Generator, shape: tuple[int, ...]) -> torch.Tensor:
    """Uniform [0, 1) numbers from `generator` on its own device, returned on the CPU."""
    return torch.rand(shape, generator=generator, device=generator.device).cpu()


def _crop_size(
    u_area: float, u_aspect: float, config: PatchConfig, height: int, width: int
) -> tuple[int, int]:
    """Crop height and width from uniform draws, clamped to [MIN_PATCH_SIDE, image side]."""
    low, high = config.area_range
    if config.area_sampling == "log_uniform":
        area = math.exp(math.log(low) + u_area * math.log(high / low)) * height * width
    else:
        area = (low + u_area * (high - low)) * height * width
    low, high = config.aspect_range
    aspect = low + u_aspect * (high - low)
    ch = min(max(round(math.sqrt(area / aspect)), MIN_PATCH_SIDE), height)
    cw = min(max(round(math.sqrt(area * aspect)), MIN_PATCH_SIDE), width)
    return ch, cw


class _RegionCentres:
    """Patch positions centred on uniformly drawn pixels of a B×H×W bool region, for a share
    `road_fraction` of the patches (own random draws, so the other draws keep their values)."""

    def __init__(
        self, region: torch.Tensor, generator: torch.Generator, config: PatchConfig
    ) -> None:
        batch = region.shape[0]
        self.width = region.shape[-1]
        self.pixels = [r.flatten().nonzero()[:, 0].cpu() for r in region]  # one list per image
        self.draws = _uniform(generator, (batch, config.n_patches, 2)).tolist()
        self.fraction = config.road_fraction
        self.used = [0] * batch

    def place(
        self, i: int, default: tuple[int, int], size: tuple[int, int], image: tuple[int, int]
    ) -> tuple[int, int]:
        """The paste corner (y, x) of image i's next patch: centred on a region pixel, or
        `default` for the others."""
        u_use, u_pixel = self.draws[i][self.used[i]]
        self.used[i] += 1
        pixels = self.pixels[i]
        if u_use >= self.fraction or len(pixels) == 0:
            return default
        flat = int(pixels[min(int(u_pixel * len(pixels)), len(pixels) - 1)])
        cy, cx = divmod(flat, self.width)
        (ch, cw), (height, width) = size, image
        return min(max(cy - ch // 2, 0), height - ch), min(max(cx - cw // 2, 0), width - cw)


def _position(u: float, last: int) -> int:
    """A uniform integer in [0, last]."""
    return min(int(u * (last + 1)), last)


def _position_elsewhere(
    u_y: float, u_x: float, paste: tuple[int, int], size: tuple[int, int], image: tuple[int, int]
) -> tuple[int, int]:
    """A crop position (y, x) whose rectangle does not overlap the paste rectangle: shifted off it
    along x when the width allows, else along y, else anywhere."""
    for axis in (1, 0):
        d, s, last = paste[axis], size[axis], image[axis] - size[axis]
        before, after = max(0, d - s + 1), max(0, last - (d + s) + 1)  # [0, d−s] and [d+s, last]
        if before + after > 0:
            u_off, u_free = (u_x, u_y) if axis == 1 else (u_y, u_x)
            k = min(int(u_off * (before + after)), before + after - 1)
            offset = k if k < before else d + s + k - before
            free = _position(u_free, image[1 - axis] - size[1 - axis])
            return (free, offset) if axis == 1 else (offset, free)
    return _position(u_y, image[0] - size[0]), _position(u_x, image[1] - size[1])


def _noise_stats(images: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Per-channel mean and std (3×1×1) and the value range of a batch."""
    values = images.float()
    mean = values.mean(dim=(0, 2, 3))[:, None, None]
    std = values.std(dim=(0, 2, 3))[:, None, None]
    return mean, std, values.min(), values.max()


def _with_noise(
    crops: torch.Tensor,
    which: torch.Tensor,
    stats: tuple[torch.Tensor, ...],
    generator: torch.Generator,
) -> torch.Tensor:
    """The P×3×Hm×Wm crops with those of P bool `which` (CPU) replaced by Gaussian noise of the
    batch's channel statistics, clipped to its range (rounded for integer dtypes)."""
    mean, std, low, high = stats
    index = which.nonzero()[:, 0]
    shape = (len(index), *crops.shape[1:])
    noise = torch.randn(shape, generator=generator, device=generator.device)
    noise = (mean + std * _to_device(noise, crops.device)).clamp(low, high)
    noise = noise if crops.is_floating_point() else noise.round()
    return crops.index_copy(0, _to_device(index, crops.device), noise.to(crops.dtype))


def _to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """`tensor` on `device`; from the CPU to a GPU without waiting for the GPU's queued work
    (pinned memory, asynchronous copy)."""
    if tensor.device == device or device.type != "cuda" or tensor.device.type != "cpu":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)
