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
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F

from sleeg_core.common.config import from_dict as config_from_dict
from sleeg_core.common.errors import SleegError
from sleeg_core.data.images import MIN_SIDE

SHAPES = ("convex_harris", "square", "random_hull")
AREA_SAMPLING = ("uniform", "log_uniform")
MIN_PATCH_SIDE = 3  # smallest crop side in pixels (a hull needs room for a triangle)
DEGENERATE_HULL_FRACTION = 0.01  # largest corner triangle below this share of the crop → rectangle
MAX_FEATHER = 16.0  # largest feather σ in pixels
HULL_EDGES_PER_PASS_GPU = 8  # hull half-planes tested per pass on a GPU (P×8×h×w bool)
HARRIS_NMS_RADIUS = 2  # a corner is the strongest response in its (2r+1)² neighbourhood
HARRIS_SIGMA = 1.0  # Gaussian window of the structure tensor
LUMA = (0.299, 0.587, 0.114)
SOBEL_SMOOTH = [0.25, 0.5, 0.25]
SOBEL_DIFF = [-0.5, 0.0, 0.5]


@dataclass
class PatchConfig:
    """How pseudo-anomalies are rendered. Defaults are the paper's version (METHOD.md).

    The paper gives no crop size for its N = 10 patches; the default crop area U(0.01, 0.05)·H·W
    was chosen by measurement on ENet (docs/accuracy.md: +7–10 AP over U(0.005, 0.02)); the
    code's U(0.03, 0.06) covers about 20 % of a frame. The authors' code settings are
    `PatchConfig.authors_code()`.
    """

    shape: str = "convex_harris"
    n_patches: int = 10  # patches per image
    area_range: tuple[float, float] = (0.01, 0.05)  # crop area as a fraction of H·W
    area_sampling: str = "uniform"  # uniform | log_uniform (as many small crops as large)
    road_fraction: float = 0.0  # share of patches centred in the `road` region, when one is given
    aspect_range: tuple[float, float] = (0.8, 1.2)  # crop width / height, uniform
    noise_fraction: float = 0.0  # probability that a patch is filled with Gaussian noise
    bank_size: int = 30  # crops a PatchRenderer keeps from past batches
    bank_crops_per_image: int = 2  # crops each image adds to the bank after rendering
    max_corners: int = 32  # at most this many Harris corners per crop (strongest first)
    harris_k: float = 0.04  # R = det(M) − k·trace(M)²
    harris_quality: float = 0.01  # corners need R ≥ quality · the crop's largest R
    n_random_points: int = 15  # points per "random_hull" shape
    feather: float = 0.0  # σ in pixels of the blended edge of pasted regions (0: hard edge)

    def __post_init__(self) -> None:
        self.area_range = _pair(self.area_range, "area_range")
        self.aspect_range = _pair(self.aspect_range, "aspect_range")
        (area_low, area_high), (aspect_low, aspect_high) = self.area_range, self.aspect_range
        problems = [
            (self.shape not in SHAPES, f"shape must be one of {', '.join(SHAPES)}"),
            (self.n_patches < 0, "n_patches must be ≥ 0"),
            (not 0 < area_low <= area_high <= 1, "area_range must satisfy 0 < low ≤ high ≤ 1"),
            (not 0 < aspect_low <= aspect_high, "aspect_range must satisfy 0 < low ≤ high"),
            (not 0 <= self.noise_fraction <= 1, "noise_fraction must be in [0, 1]"),
            (self.area_sampling not in AREA_SAMPLING, f"area_sampling must be in {AREA_SAMPLING}"),
            (not 0 <= self.road_fraction <= 1, "road_fraction must be in [0, 1]"),
            (self.bank_size < 1, "bank_size must be ≥ 1"),
            (self.bank_crops_per_image < 0, "bank_crops_per_image must be ≥ 0"),
            (self.max_corners < 3, "max_corners must be ≥ 3"),
            (not 0 <= self.harris_quality < 1, "harris_quality must be in [0, 1)"),
            (self.n_random_points < 3, "n_random_points must be ≥ 3"),
            (not 0 <= self.feather <= MAX_FEATHER, f"feather must be in [0, {MAX_FEATHER}] px"),
        ]
        for bad, message in problems:
            if bad:
                raise SleegError(f"patch config: {message} (got {self})")

    @classmethod
    def authors_code(cls) -> PatchConfig:
        """The authors' public code: hull of 15 random points, bigger crops, 10 % noise patches."""
        return cls(shape="random_hull", area_range=(0.03, 0.06), noise_fraction=0.1)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/YAML-friendly dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PatchConfig:
        """Inverse of to_dict; unknown keys raise SleegError."""
        return config_from_dict(cls, data, "patches")


def _pair(value: Any, name: str) -> tuple[float, float]:
    try:
        low, high = value
        return float(low), float(high)
    except (TypeError, ValueError) as err:
        raise SleegError(f"patch config: {name} must be two numbers, got {value!r}") from err


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


def stack_crops(crops: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Crops C×h×w of different sizes → (P×C×Hm×Wm float stack, P×2 (h, w) sizes).

    Each crop sits at the top left of its slot; its last row and column are repeated into the
    padding, so every crop can be filtered in one batch (see `_filter`).
    """
    sizes = [tuple(c.shape[-2:]) for c in crops]
    hm, wm = max(h for h, _ in sizes), max(w for _, w in sizes)
    stack = torch.stack(
        [
            F.pad(c.float(), (0, wm - w, 0, hm - h), mode="replicate")
            for c, (h, w) in zip(crops, sizes, strict=True)
        ]
    )
    return stack, torch.tensor(sizes, device=stack.device)


def harris_response(gray: torch.Tensor, sizes: torch.Tensor, k: float = 0.04) -> torch.Tensor:
    """Harris response det(M) − k·trace(M)² of a P×Hm×Wm stack of float crops of P×2 `sizes`
    (Sobel gradients, Gaussian window σ = HARRIS_SIGMA, each crop replicating its own border, so
    a constant crop gives exactly 0). Values outside a crop's own h×w are meaningless.
    """
    h, w = sizes[:, 0], sizes[:, 1]
    gx = _filter(_filter(gray, SOBEL_SMOOTH, 1, h), SOBEL_DIFF, 2, w)
    gy = _filter(_filter(gray, SOBEL_DIFF, 1, h), SOBEL_SMOOTH, 2, w)
    products = torch.stack([gx * gx, gy * gy, gx * gy], 1)  # structure tensor entries, P×3×Hm×Wm
    window = _gaussian_taps(HARRIS_SIGMA, math.ceil(2 * HARRIS_SIGMA)).tolist()
    a, b, c = _filter(_filter(products, window, 2, h), window, 3, w).unbind(1)
    return a * b - c * c - k * (a + b) ** 2


def _filter(x: torch.Tensor, taps: list[float], dim: int, lengths: torch.Tensor) -> torch.Tensor:
    """Correlate a P×… stack with odd-length `taps` along `dim`, item p replicating its border at
    its own length `lengths[p]` (so the stack's padding is never read). Same size as `x`.

    Shifted sums: crops differ in size from call to call, which convolution backends would each
    plan anew.
    """
    size, radius = x.shape[dim], len(taps) // 2
    index = torch.arange(-radius, size + radius, device=x.device).clamp(min=0)
    index = torch.minimum(index[None], lengths[:, None] - 1)  # P×(size + 2·radius)
    view = [1] * x.ndim
    view[0], view[dim] = x.shape[0], index.shape[1]
    expanded = list(x.shape)
    expanded[dim] = index.shape[1]
    padded = x.gather(dim, index.view(view).expand(expanded))
    out = torch.zeros_like(x)
    for offset, tap in enumerate(taps):
        if tap:
            out += tap * padded.narrow(dim, offset, size)
    return out


def _inside(sizes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """P×Hm×Wm bool: the pixels that belong to each crop of a stack."""
    ys = torch.arange(height, device=sizes.device)
    xs = torch.arange(width, device=sizes.device)
    return (ys[None, :, None] < sizes[:, 0, None, None]) & (
        xs[None, None, :] < sizes[:, 1, None, None]
    )


def harris_corners(
    stack: torch.Tensor,
    sizes: torch.Tensor,
    max_corners: int = 32,
    k: float = 0.04,
    quality: float = 0.01,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The strongest Harris corners of each crop of a P×3×Hm×Wm `stack_crops` stack, as
    (points, valid).

    points: P×max_corners×2 float (x, y) pixel coordinates, strongest first; valid: which rows are
    real corners (a local maximum in a (2·HARRIS_NMS_RADIUS+1)² window with R > 0 and
    R ≥ quality·the crop's max R). Fixed-size output so nothing waits on the device.
    """
    height, width = stack.shape[-2:]
    inside = _inside(sizes, height, width)
    gray = sum(weight * stack[:, c] for c, weight in enumerate(LUMA))
    response = harris_response(gray, sizes, k)
    response = torch.where(inside, response, -math.inf)
    size = 2 * HARRIS_NMS_RADIUS + 1
    local_max = response[:, None]
    for kernel in ((size, 1), (1, size)):  # separable max filter
        local_max = F.max_pool2d(
            local_max, kernel, stride=1, padding=(kernel[0] // 2, kernel[1] // 2)
        )
    peak = response.flatten(1).amax(1)[:, None, None]
    keep = inside & (response == local_max[:, 0]) & (response > 0) & (response >= quality * peak)
    score = torch.where(keep, response, -math.inf).flatten(1)
    values, index = score.topk(min(max_corners, height * width), dim=1)
    points = torch.stack([index % width, index // width], dim=-1).float()
    if points.shape[1] < max_corners:  # stacks with fewer pixels than max_corners
        pad = max_corners - points.shape[1]
        points = F.pad(points, (0, 0, 0, pad))
        values = F.pad(values, (0, pad), value=-math.inf)
    return points, values > -math.inf


def convex_hull_mask(
    points: torch.Tensor,
    valid: torch.Tensor,
    sizes: torch.Tensor,
    height: int,
    width: int,
    edges_per_pass: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rasterise the convex hull of each crop's valid (x, y) points to a P×height×width bool mask
    (False outside the crop's own h×w of `sizes`).

    points: P×M×2, valid: P×M. A pixel centre is inside when it lies on the inner side of (or on)
    every hull edge. An edge i→j is a hull edge when no point lies to its right; each point keeps
    one such edge, so the test costs M half-planes per pixel, `edges_per_pass` at a time (default:
    by device). Also returns `degenerate` (P bool): fewer than 3 valid points or no three of them
    spanning DEGENERATE_HULL_FRACTION of the crop.
    """
    points = points.float()
    anchor = points.gather(1, valid.to(torch.uint8).argmax(1)[:, None, None].expand(-1, 1, 2))
    points = torch.where(valid[..., None], points, anchor)  # invalid points copy a valid one
    d = points[:, None, :, :] - points[:, :, None, :]  # d[p, i, j] = p_j − p_i
    dx, dy = d[..., 0], d[..., 1]
    cross = dx[..., :, None] * dy[..., None, :] - dy[..., :, None] * dx[..., None, :]
    is_edge = (d != 0).any(-1) & (cross.amin(-1) >= 0)  # d[p, i, j] × d[p, i, k] ≥ 0 for all k
    first = is_edge.to(torch.uint8).argmax(2)  # one edge per point
    edge = d.gather(2, first[..., None, None].expand(-1, -1, 1, 2))[:, :, 0]  # P×M×2
    ys = torch.arange(height, device=points.device, dtype=torch.float32)
    xs = torch.arange(width, device=points.device, dtype=torch.float32)
    # side of pixel (x, y) w.r.t. edge i = e_x·(y − p_y) − e_y·(x − p_x) = row[i, y] − col[i, x]
    row = edge[..., 0, None] * (ys - points[..., 1, None])  # P×M×height
    row = torch.where(is_edge.any(2)[..., None], row, math.inf)  # points without an edge: no limit
    col = edge[..., 1, None] * (xs - points[..., 0, None])  # P×M×width
    mask = _inside(sizes, height, width)
    # k half-planes per pass (P×k×H×W memory, not P×M×H×W); default: on a GPU 8, for 8× fewer
    # kernel launches; on the CPU 1, where the reduction over k measured slower than the loop
    step = edges_per_pass or (HULL_EDGES_PER_PASS_GPU if points.is_cuda else 1)
    for i in range(0, points.shape[1], step):
        inner = row[:, i : i + step, :, None] >= col[:, i : i + step, None, :]
        mask &= inner[:, 0] if step == 1 else inner.all(1)
    area = (sizes[:, 0] * sizes[:, 1]).float()
    degenerate = cross.abs().flatten(1).amax(1) / 2 < DEGENERATE_HULL_FRACTION * area
    return mask, degenerate | (valid.sum(1) < 3)


def shape_masks(
    stack: torch.Tensor,
    sizes: torch.Tensor,
    config: PatchConfig,
    random_points: torch.Tensor | None = None,
) -> torch.Tensor:
    """The P×Hm×Wm bool shapes for `config.shape` of a P×3×Hm×Wm float stack of crops of P×2
    `sizes` (`stack_crops`/`cut_crops`), False outside each crop's own h×w ("random_hull" needs
    `random_points`, P×n×2 uniform numbers in [0, 1)). Degenerate hulls give the rectangle."""
    inside = _inside(sizes, *stack.shape[-2:])
    if config.shape == "square":
        return inside
    if config.shape == "random_hull":
        if random_points is None:
            raise SleegError('patch shape "random_hull" needs random points')
        scale = (sizes.flip(1) - 1).float()  # (w − 1, h − 1)
        points = random_points.float().to(stack.device) * scale[:, None, :]
        valid = torch.ones(points.shape[:2], dtype=torch.bool, device=stack.device)
    else:
        points, valid = harris_corners(
            stack, sizes, config.max_corners, config.harris_k, config.harris_quality
        )
    masks, degenerate = convex_hull_mask(points, valid, sizes, *stack.shape[-2:])
    return masks | (degenerate[:, None, None] & inside)


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
    draws = _uniform(generator, (batch, config.n_patches, 8)).tolist()
    hull_points = None
    if config.shape == "random_hull":
        hull_points = _uniform(generator, (batch, config.n_patches, config.n_random_points, 2))
    bank_draws = _uniform(generator, (batch, config.bank_crops_per_image, 4)).tolist()
    noise_stats = _noise_stats(images) if config.noise_fraction > 0 else None
    centres = _RegionCentres(road, generator, config) if road is not None else None
    use_bank = batch == 1 and bank is not None and len(bank) > 0
    layout: list[tuple[int, ...]] = []  # per patch: image, dy, dx, source, sy, sx, h, w
    bank_crops: list[torch.Tensor] = []
    noise: list[bool] = []
    for i in range(batch):
        for u_area, u_aspect, u_src, u_sy, u_sx, u_dy, u_dx, u_noise in draws[i]:
            source, sy, sx = i, 0, 0
            if use_bank:
                index = min(int(u_src * len(bank)), len(bank) - 1)
                bank_crops.append(bank[index][:, :height, :width])
                ch, cw = bank_crops[-1].shape[-2:]
            else:
                ch, cw = _crop_size(u_area, u_aspect, config, height, width)
            dy, dx = _position(u_dy, height - ch), _position(u_dx, width - cw)
            if centres is not None:
                dy, dx = centres.place(i, (dy, dx), (ch, cw), (height, width))
            if not use_bank:
                if batch > 1:
                    source = (i + 1 + min(int(u_src * (batch - 1)), batch - 2)) % batch
                    sy, sx = _position(u_sy, height - ch), _position(u_sx, width - cw)
                else:
                    sy, sx = _position_elsewhere(u_sy, u_sx, (dy, dx), (ch, cw), (height, width))
            layout.append((i, dy, dx, source, sy, sx, ch, cw))
            noise.append(noise_stats is not None and u_noise < config.noise_fraction)
    if not layout:
        out = images.clone()
        pasted = torch.zeros(batch, height, width, dtype=torch.bool, device=images.device)
    else:
        table = _to_device(torch.tensor(layout), images.device)  # P×8
        sizes = table[:, 6:8]
        if use_bank:
            crops = stack_crops([c.to(images.device) for c in bank_crops])[0].to(images.dtype)
        else:
            largest = max(row[6] for row in layout), max(row[7] for row in layout)
            crops = cut_crops(images, table[:, 3], table[:, 4:6], sizes, largest)
        points = (
            None if hull_points is None else _to_device(hull_points.flatten(0, 1), images.device)
        )
        masks = shape_masks(crops.float(), sizes, config, points)
        if noise_stats is not None and any(noise):
            crops = _with_noise(crops, torch.tensor(noise), noise_stats, generator)
        out, pasted = paste(images, crops, masks, table[:, 0], table[:, 1:3])
        if config.feather > 0:
            out, pasted = feather_edges(images, out, pasted, config.feather)
    if bank is not None:
        for i in range(batch):
            for u_area, u_aspect, u_y, u_x in bank_draws[i]:
                ch, cw = _crop_size(u_area, u_aspect, config, height, width)
                y, x = _position(u_y, height - ch), _position(u_x, width - cw)
                bank.push(images[i, :, y : y + ch, x : x + cw])
    return PatchedBatch(out, pasted)


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


def _gaussian_taps(sigma: float, radius: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The 2·radius + 1 taps of a Gaussian of σ = `sigma`, summing to 1 (float32)."""
    t = torch.arange(-radius, radius + 1, device=device, dtype=torch.float32)
    taps = torch.exp(-(t**2) / (2 * sigma**2))
    return taps / taps.sum()


def feather_edges(
    images: torch.Tensor, pasted_images: torch.Tensor, pasted: torch.Tensor, sigma: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Blend the pasted pixels of `pasted_images` into `images` with alpha = 2·blur(pasted) − 1
    (Gaussian σ = `sigma` px, border replicated), clamped to [0, 1]: 0 on the region's edge, 1
    from about 2σ inside it. Returns (images in the input dtype, B×H×W bool alpha ≥ 0.5)."""
    radius = max(1, math.ceil(3 * sigma))
    taps = _gaussian_taps(sigma, radius, images.device)
    region = F.pad(pasted[:, None].float(), (radius,) * 4, mode="replicate")
    region = F.conv2d(F.conv2d(region, taps.view(1, 1, -1, 1)), taps.view(1, 1, 1, -1))
    alpha = (2 * region - 1).clamp(0, 1)
    mixed = images.float() + alpha * (pasted_images.float() - images.float())
    mixed = mixed if images.is_floating_point() else mixed.round()
    return mixed.to(images.dtype), alpha[:, 0] >= 0.5


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
