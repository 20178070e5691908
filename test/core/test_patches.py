"""Pseudo-anomaly rendering: hull geometry, Harris corners, what is pasted where, banks."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sleeg_core.common.errors import SleegError
from sleeg_core.train.patch_compositing import cut_crops, paste
from sleeg_core.train.patch_config import SHAPES, PatchConfig
from sleeg_core.train.patch_shapes import convex_hull_mask, harris_corners, shape_masks, stack_crops
from sleeg_core.train.patches import PatchBank, PatchRenderer, render_patches

IDS = (30, 90, 150, 210)  # red channel of image i: which image a pixel came from


def textured(ids: tuple[int, ...] = IDS, height: int = 64, width: int = 128, seed: int = 0):
    """uint8 batch: red = the image's id everywhere, green/blue = random 4×4 blocks (corners)."""
    g = torch.Generator().manual_seed(seed)
    blocks = torch.randint(0, 256, (len(ids), 2, height // 4 + 1, width // 4 + 1), generator=g)
    texture = blocks.repeat_interleave(4, 2).repeat_interleave(4, 3)[:, :, :height, :width]
    red = torch.tensor(ids)[:, None, None, None].expand(-1, 1, height, width)
    return torch.cat([red, texture], 1).to(torch.uint8)


def hull_reference(points: np.ndarray, height: int, width: int) -> np.ndarray:
    """Pixels inside or on the convex hull of `points`, by OpenCV."""
    hull = cv2.convexHull(points.astype(np.float32))
    return np.array(
        [
            [cv2.pointPolygonTest(hull, (float(x), float(y)), False) >= 0 for x in range(width)]
            for y in range(height)
        ]
    )


def is_convex(mask: np.ndarray) -> bool:
    """A pixel set is convex when it holds every pixel of its own convex hull."""
    ys, xs = np.nonzero(mask)
    return bool((hull_reference(np.stack([xs, ys], 1), *mask.shape) == mask).all())


def hull_of(points, valid, height, width):
    """convex_hull_mask of one crop: (mask, degenerate), the same with the GPU's 8 half-planes
    per pass as with the CPU's one."""
    args = points[None], valid[None], torch.tensor([[height, width]]), height, width
    masks, degenerate = convex_hull_mask(*args)
    batched, _ = convex_hull_mask(*args, edges_per_pass=8)
    assert torch.equal(masks, batched)
    return masks[0], degenerate[0]


def corners_of(crop, **options):
    """harris_corners of one crop: (points, valid)."""
    points, valid = harris_corners(*stack_crops([crop]), **options)
    return points[0], valid[0]


def mask_of(crop, config, random_points=None):
    """shape_masks of one crop."""
    points = None if random_points is None else random_points[None]
    return shape_masks(*stack_crops([crop]), config, points)[0]


def render(images, seed=0, **config):
    return render_patches(images, torch.Generator().manual_seed(seed), PatchConfig(**config))


def test_hull_mask_matches_opencv_point_in_polygon():
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(60):
        height, width = rng.integers(3, 30, 2)
        n = rng.integers(3, 12)
        points = np.stack([rng.integers(0, width, n), rng.integers(0, height, n)], 1)
        valid = rng.random(n) < 0.8
        mask, degenerate = hull_of(
            torch.from_numpy(points).float(), torch.from_numpy(valid), height, width
        )
        if valid.sum() < 3:
            assert degenerate
            continue
        if not degenerate:
            np.testing.assert_array_equal(
                mask.numpy(), hull_reference(points[valid], height, width)
            )
            checked += 1
    assert checked > 30


def test_harris_hull_is_convex_inside_its_crop_and_covers_the_corners():
    crop = torch.zeros(3, 48, 80, dtype=torch.uint8)
    crop[:, 8:16, 10:20] = 255  # two bright blocks: 8 corners, hull = a hexagon-like polygon
    crop[:, 30:40, 50:70] = 200
    points, valid = corners_of(crop, max_corners=16)
    assert 4 <= int(valid.sum()) <= 16
    corners = points[valid].numpy()
    assert (corners >= 0).all() and (corners[:, 0] < 80).all() and (corners[:, 1] < 48).all()
    mask = mask_of(crop, PatchConfig(max_corners=16)).numpy()
    assert mask.shape == (48, 80)
    assert is_convex(mask)
    assert mask[corners[:, 1].astype(int), corners[:, 0].astype(int)].all()
    assert 0.2 < mask.mean() < 0.8  # a polygon between the blocks, not the whole rectangle
    assert not mask[0, 79] and not mask[47, 0]  # corners of the crop far from the blocks


def test_harris_finds_the_four_corners_of_a_square():
    crop = torch.zeros(3, 48, 64, dtype=torch.uint8)
    crop[:, 10:30, 12:36] = 255
    points, valid = corners_of(crop, max_corners=8)
    found = points[valid].numpy()
    for corner in [(12, 10), (35, 10), (12, 29), (35, 29)]:
        assert np.abs(found - corner).max(1).min() <= 2, (corner, found)
    mask = mask_of(crop, PatchConfig()).numpy()
    square = np.zeros((48, 64), bool)
    square[10:30, 12:36] = True
    assert (mask & square).sum() / (mask | square).sum() > 0.8


def test_constant_crop_has_no_corners_and_falls_back_to_the_rectangle():
    crop = torch.full((3, 20, 30), 77, dtype=torch.uint8)
    _, valid = corners_of(crop)
    assert not valid.any()
    assert mask_of(crop, PatchConfig()).all()


def test_collinear_or_too_few_corners_are_degenerate():
    line = torch.tensor([[0.0, 0.0], [5.0, 5.0], [9.0, 9.0], [2.0, 2.0]])
    _, degenerate = hull_of(line, torch.ones(4, dtype=torch.bool), 10, 10)
    assert degenerate
    two = torch.tensor([[0.0, 0.0], [9.0, 3.0], [4.0, 9.0]])
    _, degenerate = hull_of(two, torch.tensor([True, True, False]), 10, 10)
    assert degenerate
    _, degenerate = hull_of(two, torch.ones(3, dtype=torch.bool), 10, 10)
    assert not degenerate
    crop = torch.zeros(3, 10, 10, dtype=torch.uint8)
    diagonal = torch.tensor([[0.1, 0.1], [0.5, 0.5], [0.9, 0.9]])
    assert mask_of(crop, PatchConfig(shape="random_hull"), diagonal).all()  # rectangle


@pytest.mark.parametrize("shape", ["convex_harris", "random_hull"])
def test_crops_shaped_together_get_the_shapes_they_get_alone(shape):
    """Crops of different sizes share one padded batch; no crop sees another's padding."""
    images = textured(height=96, width=128)
    g = torch.Generator().manual_seed(3)
    crops = []
    for i, (h, w) in enumerate([(40, 60), (7, 90), (33, 33), (3, 5), (96, 128), (20, 11)]):
        y = int(torch.randint(0, 96 - h + 1, (1,), generator=g))
        x = int(torch.randint(0, 128 - w + 1, (1,), generator=g))
        crops.append(images[i % len(IDS), :, y : y + h, x : x + w])
    points = torch.rand(len(crops), 15, 2, generator=g)
    config = PatchConfig(shape=shape)
    together = shape_masks(*stack_crops(crops), config, points)
    assert together.shape == (len(crops), 96, 128)
    for crop, mask, p in zip(crops, together, points, strict=True):
        h, w = crop.shape[-2:]
        assert torch.equal(mask[:h, :w], mask_of(crop, config, p))
        assert mask.sum() == mask[:h, :w].sum()  # nothing outside the crop's own size
    assert any(
        not m[: c.shape[1], : c.shape[2]].all() for m, c in zip(together, crops, strict=True)
    )


def test_cut_crops_equal_the_stacked_slices():
    images = textured()
    source = torch.tensor([1, 0, 3, 2, 1])
    corners = torch.tensor([[0, 0], [10, 20], [60, 120], [5, 7], [63, 0]])
    sizes = torch.tensor([[64, 128], [7, 9], [4, 8], [30, 3], [1, 128]])
    crops = cut_crops(images, source, corners, sizes, (64, 128))
    slices = [
        images[s, :, y : y + h, x : x + w]
        for s, (y, x), (h, w) in zip(source, corners.tolist(), sizes.tolist(), strict=True)
    ]
    assert crops.dtype == images.dtype
    assert torch.equal(crops.float(), stack_crops(slices)[0])


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_paste_equals_pasting_one_patch_after_the_other(dtype):
    """The batched paste (max-scatter of patch numbers, then one gather) against the plain loop:
    overlapping patches, later over earlier, masks with holes, patches at the borders."""
    g = torch.Generator().manual_seed(0)
    images = textured().to(dtype)
    count, (height, width) = 40, images.shape[-2:]
    sizes = torch.stack(
        [
            torch.randint(1, height + 1, (count,), generator=g),
            torch.randint(1, 41, (count,), generator=g),
        ],
        1,
    )
    corners = torch.stack(
        [
            (torch.rand(count, generator=g) * (height - sizes[:, 0] + 1)).long(),
            (torch.rand(count, generator=g) * (width - sizes[:, 1] + 1)).long(),
        ],
        1,
    )
    corners[0] = torch.tensor([height - sizes[0, 0], width - sizes[0, 1]])  # bottom-right corner
    image_index = torch.randint(0, len(images), (count,), generator=g)
    hm, wm = sizes.amax(0).tolist()
    crops = torch.randint(0, 256, (count, 3, hm, wm), generator=g).to(dtype)
    inside = (torch.arange(hm)[None, :, None] < sizes[:, 0, None, None]) & (
        torch.arange(wm)[None, None, :] < sizes[:, 1, None, None]
    )
    masks = inside & (torch.rand(count, hm, wm, generator=g) < 0.8)
    out, pasted = paste(images, crops, masks, image_index, corners)
    expected, expected_pasted = (
        images.clone(),
        torch.zeros(len(images), height, width, dtype=torch.bool),
    )
    for p in range(count):
        (y, x), (h, w), i = corners[p].tolist(), sizes[p].tolist(), int(image_index[p])
        region = expected[i, :, y : y + h, x : x + w]
        region.copy_(torch.where(masks[p, :h, :w], crops[p, :, :h, :w], region))
        expected_pasted[i, y : y + h, x : x + w] |= masks[p, :h, :w]
    assert out.dtype == dtype and torch.equal(out, expected)
    assert torch.equal(pasted, expected_pasted)
    assert masks.sum() > pasted.sum()  # the patches did overlap


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_pasted_marks_exactly_the_pixels_taken_from_other_images(shape, dtype):
    images = textured().to(dtype)
    before = images.clone()
    out = render(images, seed=3, shape=shape)
    assert out.images.dtype == dtype and out.images.shape == images.shape
    assert out.pasted.dtype == torch.bool and out.pasted.shape == (4, 64, 128)
    assert torch.equal(images, before)  # the input is untouched
    red_in, red_out = images[:, 0], out.images[:, 0]
    # every pasted pixel came from another image (another id); every other pixel is unchanged
    assert torch.equal(out.pasted, red_out != red_in)
    assert torch.equal(
        out.images.permute(1, 0, 2, 3)[:, ~out.pasted], images.permute(1, 0, 2, 3)[:, ~out.pasted]
    )
    assert set(red_out[out.pasted].tolist()) <= set(IDS)
    assert all(out.pasted[i].any() for i in range(4))


@pytest.mark.parametrize("shape", SHAPES)
def test_a_pasted_patch_is_a_piece_of_its_source_image(shape):
    images = textured()
    out = render(images, seed=5, shape=shape, n_patches=1)
    for i in range(len(images)):
        ys, xs = np.nonzero(out.pasted[i].numpy())
        box = np.s_[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
        source = IDS.index(int(out.images[i, 0][out.pasted[i]][0]))
        assert source != i
        template = out.images[i].permute(1, 2, 0).numpy()[box].astype(np.float32)
        mask = np.repeat(out.pasted[i].numpy()[box][:, :, None], 3, 2).astype(np.float32)
        haystack = images[source].permute(1, 2, 0).numpy().astype(np.float32)
        score = cv2.matchTemplate(haystack, template, cv2.TM_SQDIFF, mask=mask)
        assert score.min() == 0
        if shape == "square":
            assert out.pasted[i].sum() == (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
        else:
            assert is_convex(out.pasted[i].numpy()[box])


def test_random_hull_patches_are_convex_polygons_not_rectangles():
    out = render(textured(), seed=1, shape="random_hull", n_patches=1, area_range=(0.1, 0.1))
    for pasted in out.pasted.numpy():
        ys, xs = np.nonzero(pasted)
        box_area = (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
        assert pasted.sum() < 0.95 * box_area


@pytest.mark.parametrize("shape", SHAPES)
def test_same_seed_same_output_other_seed_other_output(shape):
    images = textured()
    config = PatchConfig(shape=shape, noise_fraction=0.5)
    runs = [PatchRenderer(config)(images, torch.Generator().manual_seed(s)) for s in (7, 7, 8)]
    assert torch.equal(runs[0].images, runs[1].images)
    assert torch.equal(runs[0].pasted, runs[1].pasted)
    assert not torch.equal(runs[0].pasted, runs[2].pasted)


def test_single_image_with_empty_bank_copies_from_elsewhere_in_the_same_image():
    height, width = 64, 64
    y, x = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    image = torch.stack([4 * x, 4 * y, textured((0,), height, width)[0, 1]]).to(torch.uint8)[None]
    renderer = PatchRenderer(PatchConfig(area_range=(0.02, 0.05)))
    out = renderer(image, torch.Generator().manual_seed(0))
    pasted = out.pasted[0]
    assert pasted.any()
    unchanged = (out.images[0] == image[0]).all(0)
    assert torch.equal(~pasted, unchanged)  # the pasted pixels came from other positions
    assert len(renderer.bank) == renderer.config.bank_crops_per_image


def test_single_image_takes_bank_crops_from_earlier_batches_only():
    renderer = PatchRenderer(PatchConfig())
    first, second = textured((30,), seed=1), textured((210,), seed=2)
    renderer(first, torch.Generator().manual_seed(0))
    out = renderer(second, torch.Generator().manual_seed(1))
    assert out.pasted.any()
    assert set(out.images[0, 0][out.pasted[0]].tolist()) == {30}
    assert torch.equal(out.images[0, 0] != 210, out.pasted[0])
    assert len(renderer.bank) == 4


def test_bank_keeps_the_newest_crops_and_round_trips():
    bank = PatchBank(size=3)
    for value in range(5):
        bank.push(torch.full((3, 4, 5), value, dtype=torch.uint8))
    assert len(bank) == 3 and [int(bank[i][0, 0, 0]) for i in range(3)] == [2, 3, 4]
    restored = PatchBank(size=3)
    restored.load_state_dict(bank.state_dict(), torch.device("cpu"))
    assert all(torch.equal(bank[i], restored[i]) for i in range(3))


def test_bank_crops_larger_than_the_image_are_cut_to_fit():
    renderer = PatchRenderer(PatchConfig(shape="square"))
    renderer(textured((30,), 64, 128), torch.Generator().manual_seed(0))
    renderer.bank.push(torch.full((3, 200, 300), 30, dtype=torch.uint8))
    out = renderer(textured((210,), 16, 16), torch.Generator().manual_seed(0))
    assert out.images.shape == (1, 3, 16, 16) and out.pasted.any()


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("batch", [1, 2])
def test_tiny_images(shape, batch):
    images = textured(IDS[:batch], 8, 8)
    out = render(images, shape=shape, noise_fraction=0.3)
    assert out.images.shape == images.shape and out.pasted.any()
    changed = (out.images != images).any(1)
    assert not (changed & ~out.pasted).any()


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_noise_patches_have_the_batch_statistics_and_range(dtype):
    images = torch.tensor(IDS[:2], dtype=dtype)[:, None, None, None].expand(2, 3, 64, 128)
    out = render(images.contiguous(), noise_fraction=1.0)
    noise = out.images.permute(1, 0, 2, 3)[:, out.pasted].float()
    assert noise.numel() > 0 and noise.unique().numel() > 20  # not the colours of the images
    assert noise.min() >= IDS[0] and noise.max() <= IDS[1]
    assert torch.equal(out.images[:, 0][~out.pasted], images[:, 0][~out.pasted])
    assert out.images.dtype == dtype


def test_no_noise_when_the_fraction_is_zero():
    images = torch.tensor(IDS, dtype=torch.uint8)[:, None, None, None].expand(4, 3, 32, 32)
    out = render(images.contiguous(), shape="square")
    assert set(out.images.unique().tolist()) <= set(IDS)


def test_config_round_trip_presets_and_errors():
    config = PatchConfig.authors_code()
    assert config.shape == "random_hull" and config.noise_fraction == 0.1
    assert PatchConfig.from_dict(config.to_dict()) == config
    assert PatchConfig().to_dict()["area_range"] == [0.01, 0.05]
    for bad in [
        {"shape": "circle"},
        {"area_range": (0.2, 0.1)},
        {"area_range": 3},
        {"noise_fraction": 1.5},
        {"max_corners": 2},
        {"n_patches": -1},
        {"area_sampling": "normal"},
        {"road_fraction": -0.1},
        {"feather": -1.0},
        {"feather": 100.0},
    ]:
        with pytest.raises(SleegError):
            PatchConfig(**bad)
    with pytest.raises(SleegError, match=r"unknown config key 'patches\.n_patch'"):
        PatchConfig.from_dict({"n_patch": 3})


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_feathered_patches_fade_in_from_the_edge_and_keep_the_rest(dtype):
    images = torch.tensor(IDS[:2], dtype=dtype)[:, None, None, None].expand(2, 3, 96, 192)
    images = images.contiguous()
    hard = render(images, seed=3, shape="square")
    soft = render(images, seed=3, shape="square", feather=2.0)
    assert soft.images.dtype == dtype
    # outside the hard region nothing changes; the label shrinks to the pixels mostly pasted
    assert torch.equal(soft.images[:, 0][~hard.pasted], images[:, 0][~hard.pasted])
    assert (soft.pasted & ~hard.pasted).sum() == 0 and 0 < soft.pasted.sum() < hard.pasted.sum()
    # 3σ inside the region's edge the patch is as pasted (alpha ≥ 0.997)
    inner = -F.max_pool2d(-hard.pasted[:, None].float(), 13, 1, 6)[:, 0] > 0.5
    assert inner.any()
    gap = (soft.images.float() - hard.images.float()).abs()[:, 0][inner]
    assert gap.max() <= 0.003 * (IDS[1] - IDS[0]) + 0.5
    # on the edge's inner rim the value lies strictly between the image and the patch (but at a
    # square's corners, where alpha = 2·Φ(d/σ)² − 1 can round to 0)
    rim = hard.pasted & ~(-F.max_pool2d(-hard.pasted[:, None].float(), 3, 1, 1)[:, 0] > 0.5)
    red, under, over = soft.images[:, 0].float(), images[:, 0].float(), hard.images[:, 0].float()
    between = (red - under) * (over - red) > 0
    changed = rim & (over != under)
    assert changed.any() and between[changed].float().mean() > 0.75


@pytest.mark.parametrize(
    "images",
    [
        torch.zeros(3, 32, 32, dtype=torch.uint8),
        torch.zeros(1, 1, 32, 32, dtype=torch.uint8),
        torch.zeros(1, 3, 32, 32, dtype=torch.int32),
        torch.zeros(1, 3, 7, 32, dtype=torch.uint8),
        torch.zeros(0, 3, 32, 32, dtype=torch.uint8),
    ],
)
def test_bad_batches_raise_a_clear_error(images):
    with pytest.raises(SleegError, match="patch rendering"):
        render(images)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_renders_on_the_gpu_like_on_the_cpu():
    images = textured()
    cpu = render(images, seed=4, shape="square", noise_fraction=0.0)
    gpu = render(images.cuda(), seed=4, shape="square", noise_fraction=0.0)
    assert gpu.images.is_cuda and gpu.pasted.is_cuda
    assert torch.equal(cpu.images, gpu.images.cpu()) and torch.equal(cpu.pasted, gpu.pasted.cpu())
    harris = render(images.cuda(), seed=4)
    assert torch.equal(harris.pasted, harris.images[:, 0] != images.cuda()[:, 0])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("shape", SHAPES)
def test_rendering_on_the_gpu_with_a_cpu_generator_never_waits_for_the_gpu(shape):
    """Training queues the patches behind the GPU's earlier work: any host-device sync raises."""
    images = textured().cuda()
    config = PatchConfig(shape=shape, noise_fraction=0.5)
    renderer = PatchRenderer(config)
    renderer(images, torch.Generator().manual_seed(0))  # warm-up (first-use allocations)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        out = renderer(images, torch.Generator().manual_seed(1))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    expected = render_patches(images.cpu(), torch.Generator().manual_seed(1), config)
    agree = (out.pasted.cpu() == expected.pasted).float().mean()  # GPU float sums may move a
    assert agree > 0.99 and out.pasted.any()  # Harris corner; the geometry draws are the same


def test_road_patches_are_centred_in_the_region_and_the_others_anywhere():
    images = textured(height=64, width=256)
    road = torch.zeros(4, 64, 256, dtype=torch.bool)
    road[:, 40:, 200:] = True  # a small corner of each image
    on_road = render_patches(
        images,
        torch.Generator().manual_seed(1),
        PatchConfig(shape="square", n_patches=1, road_fraction=1.0),
        road=road,
    )
    for i in range(4):
        ys, xs = np.nonzero(on_road.pasted[i].numpy())
        centre_y, centre_x = (ys.min() + ys.max()) / 2, (xs.min() + xs.max()) / 2
        # the crop is clamped inside the image, so its centre lies in the region or at the border
        assert (centre_x >= 200 - 1 and centre_y >= 40 - 1) or ys.max() == 63 or xs.max() == 255
    anywhere = render_patches(
        images,
        torch.Generator().manual_seed(1),
        PatchConfig(shape="square", n_patches=10, road_fraction=0.0),
        road=road,
    )
    assert (anywhere.pasted & ~road).any()
    empty = torch.zeros_like(road)  # no region pixels: placed anywhere, no error
    out = render_patches(
        images,
        torch.Generator().manual_seed(1),
        PatchConfig(shape="square", road_fraction=1.0),
        road=empty,
    )
    assert out.pasted.any()


def test_road_fraction_sends_that_share_of_patches_to_the_region():
    images = textured(height=128, width=256)
    road = torch.zeros(4, 128, 256, dtype=torch.bool)
    road[:, 96:, :64] = True  # 1/16 of each image
    config = PatchConfig(shape="square", n_patches=1, area_range=(0.001, 0.001))
    inside = []
    for fraction in (0.0, 0.5, 1.0):
        hits = 0
        for seed in range(40):
            out = render_patches(
                images,
                torch.Generator().manual_seed(seed),
                PatchConfig(**{**config.to_dict(), "road_fraction": fraction}),
                road=road,
            )
            hits += int((out.pasted & road).sum(dim=(1, 2)).gt(0).sum())
        inside.append(hits / 160)
    assert inside[0] < 0.2 and 0.35 < inside[1] < 0.75 and inside[2] == 1.0


def test_log_uniform_areas_span_the_range_geometrically():
    images = textured(height=256, width=512)
    areas = {"uniform": [], "log_uniform": []}
    for sampling in areas:
        for seed in range(30):
            out = render(
                images[:2],
                seed=seed,
                shape="square",
                n_patches=1,
                area_range=(0.0005, 0.05),
                area_sampling=sampling,
            )
            areas[sampling] += (out.pasted.sum(dim=(1, 2)).float() / (256 * 512)).tolist()
    for values in areas.values():
        assert min(values) > 0.0003 and max(values) < 0.06
    median_uniform = float(np.median(areas["uniform"]))
    median_log = float(np.median(areas["log_uniform"]))
    assert 0.018 < median_uniform < 0.035  # (low + high) / 2 ≈ 0.025
    assert 0.002 < median_log < 0.01  # √(low · high) = 0.005
