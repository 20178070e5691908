"""Cutting crops out of a batch and pasting shaped crops into it, for all patches at once, with
optionally feathered edges (see `sleeg_core.train.patches`)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from sleeg_core.train.patch_shapes import gaussian_taps


def cut_crops(
    images: torch.Tensor,
    source: torch.Tensor,
    corners: torch.Tensor,
    sizes: torch.Tensor,
    largest: tuple[int, int],
) -> torch.Tensor:
    """The P crops of a B×3×H×W batch as one P×3×Hm×Wm stack in the images' dtype, like
    `stack_crops` (crop p: image source[p], top-left corners[p] = (y, x), sizes[p] = (h, w) of
    which `largest` = (Hm, Wm) is the largest; its last row and column repeated into the
    padding), with one gather."""
    _, channels, height, width = images.shape
    hm, wm = largest
    rows = torch.minimum(torch.arange(hm, device=images.device), sizes[:, 0, None] - 1)
    cols = torch.minimum(torch.arange(wm, device=images.device), sizes[:, 1, None] - 1)
    plane = torch.arange(channels, device=images.device) * height * width
    first = (source * channels * height + corners[:, 0]) * width + corners[:, 1]  # P
    row_starts = first[:, None] + rows * width  # P×Hm
    index = plane[None, :, None, None] + row_starts[:, None, :, None] + cols[:, None, None, :]
    return images.flatten().index_select(0, index.flatten()).view(len(source), channels, hm, wm)


def paste(
    images: torch.Tensor,
    crops: torch.Tensor,
    masks: torch.Tensor,
    image_index: torch.Tensor,
    corners: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Paste P masked crops into a copy of a B×3×H×W batch in order, later over earlier.

    crops: P×3×Hm×Wm (the images' dtype), masks: P×Hm×Wm (False outside each crop's own size,
    which must fit inside the image at its corner), crop p goes to image image_index[p] with its
    top-left at corners[p] = (y, x). A max-scatter of patch numbers finds the last patch over
    each pixel; one indexed copy writes the winning crop pixels (the others go to a spare
    element). Returns (images, pasted B×H×W bool).
    """
    batch, channels, height, width = images.shape
    count, _, hm, wm = crops.shape
    device, plane = images.device, height * width
    ys = (corners[:, 0, None] + torch.arange(hm, device=device)).clamp(max=height - 1)
    xs = (corners[:, 1, None] + torch.arange(wm, device=device)).clamp(max=width - 1)
    pixel = (image_index[:, None, None] * height + ys[:, :, None]) * width + xs[:, None, :]
    number = torch.arange(count, device=device)[:, None, None]
    number = torch.where(masks, number, -2).flatten()  # −2: masked out, never an owner
    owner = torch.full((batch * plane,), -1, dtype=torch.long, device=device)
    owner.scatter_reduce_(0, pixel.flatten(), number, "amax")
    wins = (owner.index_select(0, pixel.flatten()) == number).view(count, 1, hm, wm)
    element = pixel + (image_index * (channels - 1) * plane)[:, None, None]  # channel 0
    element = element[:, None] + torch.arange(channels, device=device)[:, None, None] * plane
    spare = images.numel()
    out = images.new_empty(spare + 1)
    out[:spare] = images.flatten()
    out.index_copy_(0, torch.where(wins, element, spare).flatten(), crops.flatten())
    return out[:spare].view_as(images), (owner >= 0).view(batch, height, width)


def feather_edges(
    images: torch.Tensor, pasted_images: torch.Tensor, pasted: torch.Tensor, sigma: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Blend the pasted pixels of `pasted_images` into `images` with alpha = 2·blur(pasted) − 1
    (Gaussian σ = `sigma` px, border replicated), clamped to [0, 1]: 0 on the region's edge, 1
    from about 2σ inside it. Returns (images in the input dtype, B×H×W bool alpha ≥ 0.5)."""
    radius = max(1, math.ceil(3 * sigma))
    taps = gaussian_taps(sigma, radius, images.device)
    region = F.pad(pasted[:, None].float(), (radius,) * 4, mode="replicate")
    region = F.conv2d(F.conv2d(region, taps.view(1, 1, -1, 1)), taps.view(1, 1, 1, -1))
    alpha = (2 * region - 1).clamp(0, 1)
    mixed = images.float() + alpha * (pasted_images.float() - images.float())
    mixed = mixed if images.is_floating_point() else mixed.round()
    return mixed.to(images.dtype), alpha[:, 0] >= 0.5
