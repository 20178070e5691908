"""The shapes of pseudo-anomaly patches, for all crops of a batch at once: crops stacked to the
largest size, their Harris corners, the convex hull of corners or random points rasterised, and
the shape masks of a `PatchConfig` (see `sleeg_core.train.patches`)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from sleeg_core.common.errors import SleegError
from sleeg_core.train.patch_config import PatchConfig

DEGENERATE_HULL_FRACTION = 0.01  # largest corner triangle below this share of the crop → rectangle
HULL_EDGES_PER_PASS_GPU = 8  # hull half-planes tested per pass on a GPU (P×8×h×w bool)
HARRIS_NMS_RADIUS = 2  # a corner is the strongest response in its (2r+1)² neighbourhood
HARRIS_SIGMA = 1.0  # Gaussian window of the structure tensor
LUMA = (0.299, 0.587, 0.114)
SOBEL_SMOOTH = [0.25, 0.5, 0.25]
SOBEL_DIFF = [-0.5, 0.0, 0.5]


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
    window = gaussian_taps(HARRIS_SIGMA, math.ceil(2 * HARRIS_SIGMA)).tolist()
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


def gaussian_taps(sigma: float, radius: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The 2·radius + 1 taps of a Gaussian of σ = `sigma`, summing to 1 (float32)."""
    t = torch.arange(-radius, radius + 1, device=device, dtype=torch.float32)
    taps = torch.exp(-(t**2) / (2 * sigma**2))
    return taps / taps.sum()
