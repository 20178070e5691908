"""sleeg_core.data.geometry: resize modes and their inverses (pixel alignment), ROI polygons, ignore
masks, the judged area, and AnomalySegmenter's outputs in each resize mode."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sleeg_core.common.errors import SleegError
from sleeg_core.data.geometry import (
    RESIZE_MODES,
    JudgedArea,
    Rect,
    fit_frame,
    parse_roi_polygon,
    rasterize_polygon,
    read_mask,
    resize_mask,
    restrict_score,
    to_frame,
    to_input,
)
from sleeg_core.model.head import OoDHead
from sleeg_core.model.inference import PAD_RGB, AnomalySegmenter
from sleeg_core.segmentors.enet import ENetSegmentor

SIZE = (512, 1024)  # network input h, w (the node's default)
FRAMES = {"16:9": (720, 1280), "4:3": (480, 640)}


@pytest.mark.parametrize(
    ("frame", "mode", "src", "dst"),
    [
        ("16:9", "stretch", Rect(0, 0, 1280, 720), Rect(0, 0, 1024, 512)),
        ("16:9", "pad", Rect(0, 0, 1280, 720), Rect(57, 0, 910, 512)),
        ("16:9", "crop", Rect(0, 40, 1280, 640), Rect(0, 0, 1024, 512)),
        ("4:3", "pad", Rect(0, 0, 640, 480), Rect(170, 0, 683, 512)),
        ("4:3", "crop", Rect(0, 80, 640, 320), Rect(0, 0, 1024, 512)),
    ],
)
def test_fit_rectangles(frame, mode, src, dst):
    fit = fit_frame(FRAMES[frame], SIZE, mode)
    assert (fit.src, fit.dst) == (src, dst)


def test_unknown_resize_mode_is_refused():
    with pytest.raises(SleegError, match="unknown resize mode 'zoom'; choose one of: stretch"):
        fit_frame((720, 1280), SIZE, "zoom")


@pytest.mark.parametrize("mode", RESIZE_MODES)
@pytest.mark.parametrize("frame", list(FRAMES))
@pytest.mark.parametrize("size", [SIZE, (384, 384)])
def test_round_trip_lands_every_output_pixel_on_its_own_frame_pixel(frame, mode, size):
    """A frame whose pixels hold their own centre coordinates, through the network input and
    back. Away from the window's edges each output pixel holds a point inside itself (to the
    antialiasing filter's 0.05 px): it lies on the same frame pixel. A half-pixel slip in either
    direction would be off by half a network pixel. At the edges, where the filter is cut off, a
    pixel is off by less than half a network pixel; outside a crop window is the fill."""
    h, w = FRAMES[frame]
    fit = fit_frame((h, w), size, mode)
    ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    coords = torch.stack([xs, ys])[None].double()
    net_in = to_input(coords, fit, pad=(-1.0, -1.0))
    assert net_in.shape[-2:] == size
    d = fit.dst
    if d != Rect(0, 0, size[1], size[0]):
        outside = torch.ones(size, dtype=torch.bool)
        d.cut(outside)[:] = False
        assert (net_in[0][:, outside] == -1).all()  # padding
    u, v = d.x + d.width // 2, d.y + d.height // 3  # a network pixel sees the point under it
    expect = fit.input_to_frame(u + 0.5, v + 0.5)
    assert net_in[0, :, v, u].tolist() == pytest.approx(expect, abs=0.1)
    back = to_frame(net_in, fit, fill=-7.0)[0]
    assert back.shape == (2, h, w)
    s = fit.src
    outside = torch.ones((h, w), dtype=torch.bool)
    s.cut(outside)[:] = False
    assert (back[:, outside] == -7).all()
    err = (s.cut(back) - s.cut(coords[0])).abs()
    ratio = max(s.width / d.width, s.height / d.height, 1.0)  # frame pixels per network pixel
    margin = 2 * math.ceil(ratio) + 2
    inner = (slice(None), slice(margin, -margin), slice(margin, -margin))
    assert err[inner].max() < 0.1
    assert torch.equal(s.cut(back)[inner].floor(), s.cut(coords[0])[inner].floor())
    assert err.max() < ratio / 2


@pytest.mark.parametrize("mode", RESIZE_MODES)
def test_coordinate_maps_are_inverse(mode):
    fit = fit_frame((720, 1280), SIZE, mode)
    for x, y in ((0.0, 0.0), (640.5, 360.25), (1279.9, 719.0)):
        assert fit.input_to_frame(*fit.frame_to_input(x, y)) == pytest.approx((x, y))


def test_uint8_frames_stay_uint8_and_pad_per_channel():
    frame = torch.full((1, 3, 720, 1280), 200, dtype=torch.uint8)
    fit = fit_frame((720, 1280), SIZE, "pad")
    net_in = to_input(frame, fit, PAD_RGB)
    assert net_in.dtype == torch.uint8 and net_in.shape == (1, 3, *SIZE)
    assert net_in[0, :, 0, 0].tolist() == list(PAD_RGB)
    assert (fit.dst.cut(net_in) == 200).all()


def test_fill_outside_a_crop_defaults_to_each_images_lowest_value():
    fit = fit_frame((8, 16), (8, 8), "crop")
    maps = torch.arange(2 * 64, dtype=torch.float32).view(2, 1, 8, 8)
    out = to_frame(maps, fit)
    assert out[0, 0, 0, 0] == 0 and out[1, 0, 0, 15] == 64 and torch.equal(out[..., 4:12], maps)
    assert (to_frame(maps, fit, fill=-1.0)[..., :4] == -1).all()


# ---------------------------------------------------------------- ROI and ignore mask


def test_roi_polygon_parsing():
    assert parse_roi_polygon([]) == []
    assert parse_roi_polygon([0, 0.5, 1, 0.5, 1, 1]) == [(0, 0.5), (1, 0.5), (1, 1)]
    with pytest.raises(SleegError, match="at least 3 points"):
        parse_roi_polygon([0, 0.5, 1, 0.5])
    with pytest.raises(SleegError, match="an even count"):
        parse_roi_polygon([0, 0.5, 1, 0.5, 1, 1, 0])
    with pytest.raises(SleegError, match=r"each in \[0, 1\]"):
        parse_roi_polygon([0, 0.5, 1.5, 0.5, 1, 1])
    with pytest.raises(SleegError, match=r"each in \[0, 1\]"):
        parse_roi_polygon([0, 0.5, float("nan"), 0.5, 1, 1])


@pytest.mark.parametrize("frame", list(FRAMES))
def test_bottom_half_roi_is_exactly_the_bottom_rows(frame):
    h, w = FRAMES[frame]
    roi = rasterize_polygon(parse_roi_polygon([0, 0.5, 1, 0.5, 1, 1, 0, 1]), h, w)
    expect = np.zeros((h, w), dtype=bool)
    expect[h // 2 :] = True
    np.testing.assert_array_equal(roi, expect)


def test_polygon_takes_pixels_by_their_centre():
    """A triangle against cv2.pointPolygonTest on every pixel centre (off the edges)."""
    points = [(0.1, 0.2), (0.9, 0.35), (0.4, 0.95)]
    h, w = 40, 60
    roi = rasterize_polygon(points, h, w)
    contour = np.array([(x * w, y * h) for x, y in points], np.float32)
    for y in range(h):
        for x in range(w):
            dist = cv2.pointPolygonTest(contour, (x + 0.5, y + 0.5), True)
            if abs(dist) > 1e-3:
                assert roi[y, x] == (dist > 0), (x, y)
    assert 0.2 < roi.mean() < 0.4


def test_ignore_mask_file_any_channel_nonzero_and_nearest_resize(tmp_path):
    mask = np.zeros((4, 8, 3), np.uint8)
    mask[3, :, 2] = 9  # bottom row, one channel
    cv2.imwrite(str(tmp_path / "hood.png"), mask)
    ignore = read_mask(tmp_path / "hood.png")
    assert ignore.shape == (4, 8) and ignore.sum() == 8 and ignore[3].all()
    big = resize_mask(ignore, 720, 1280)
    assert big[540:].all() and not big[:540].any()  # each row of the mask → 180 frame rows
    with pytest.raises(SleegError, match="mask image not found"):
        read_mask(tmp_path / "none.png")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(SleegError, match="cannot decode mask image"):
        read_mask(tmp_path / "bad.png")


def test_judged_area_combines_crop_window_roi_and_ignore_mask():
    assert JudgedArea().mask(720, 1280) is None
    assert JudgedArea(size=SIZE, mode="pad").mask(720, 1280) is None
    hood = np.zeros((20, 20), dtype=bool)
    hood[17:] = True  # bottom 15 %
    area = JudgedArea(parse_roi_polygon([0.5, 0, 1, 0, 1, 1, 0.5, 1]), hood, SIZE, "crop")
    judged = area.mask(720, 1280)
    assert judged is area.mask(720, 1280)  # computed once per size
    expect = np.zeros((720, 1280), dtype=bool)
    expect[40:612, 640:] = True  # crop window rows 40..679, right half, above the hood (612)
    np.testing.assert_array_equal(judged, expect)


def test_judged_area_keeps_the_maps_of_few_frame_sizes():
    """A stream of ever-new frame sizes (a bad publisher) must not grow memory without bound
    (benchmarks/node_soak.py found it: ~500 MB per 10k frames with an ROI)."""
    area = JudgedArea(parse_roi_polygon([0, 0.5, 1, 0.5, 1, 1, 0, 1]), size=SIZE, cached=3)
    for width in range(16, 216):
        assert area.mask(64, width)[32:].all() and not area.mask(64, width)[:32].any()
    assert len(area._maps) == 3
    recent = area.mask(64, 214)
    area.mask(64, 999)
    assert area.mask(64, 214) is recent  # the most recently used stay
    assert area.mask(64, 213) is not None


def test_restrict_score_sets_unjudged_pixels_to_the_lowest_judged_score():
    score = np.arange(12, dtype=np.float32).reshape(3, 4)
    judged = np.zeros((3, 4), dtype=bool)
    judged[1:, 1:] = True
    out = restrict_score(score, judged)
    assert out.dtype == np.float32 and (out[~judged] == 5).all()
    np.testing.assert_array_equal(out[judged], score[judged])
    assert restrict_score(score, None) is score
    assert (restrict_score(score, np.zeros((3, 4), dtype=bool)) == 0).all()


# ---------------------------------------------------------------- AnomalySegmenter


@pytest.fixture(scope="module")
def model() -> AnomalySegmenter:
    torch.manual_seed(0)
    segmentor = ENetSegmentor(weights=None, feature_layer="bottleneck4")
    return AnomalySegmenter(segmentor, OoDHead(64, width=8), lam=0.0).eval()


def frames() -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    return torch.randint(0, 256, (2, 3, 54, 96), dtype=torch.uint8, generator=g)  # 16:9


@pytest.mark.parametrize("mode", RESIZE_MODES)
def test_segmenter_outputs_at_frame_size_in_every_mode(model, mode):
    pred = model(frames(), scores=("sleeg",), size=(32, 64), keep_logits=True, resize_mode=mode)
    assert pred.train_ids.shape == (2, 54, 96) and pred.logits.shape == (2, 19, 54, 96)
    assert pred.scores["sleeg"].shape == (2, 54, 96) and pred.scores["sleeg"].isfinite().all()
    if mode != "crop":
        assert pred.train_ids.max() < 19


def test_segmenter_crop_fills_outside_the_window(model):
    x = frames()
    fit = fit_frame((54, 96), (32, 64), "crop")
    assert fit.src == Rect(0, 3, 96, 48)
    pred = model(x, scores=("sleeg",), size=(32, 64), resize_mode="crop")
    score, ids = pred.scores["sleeg"], pred.train_ids
    for rows in (slice(0, 3), slice(51, 54)):
        assert (ids[:, rows] == 255).all()
        assert (score[:, rows] == score.flatten(1).min(1).values[:, None, None]).all()
    assert ids[:, 3:51].max() < 19
    window = model(x[..., 3:51, :], scores=("sleeg",), size=(32, 64))
    torch.testing.assert_close(score[:, 3:51], window.scores["sleeg"])


def test_segmenter_stretch_is_the_plain_resize(model):
    """stretch: the frame resized to the network size and every output resized back."""
    x = frames()
    pred = model(x, scores=("sleeg",), size=(32, 64), resize_mode="stretch")
    small = F.interpolate(x.float(), size=(32, 64), mode="bilinear", antialias=True)
    native = model(small.round().clamp(0, 255).to(torch.uint8), scores=("sleeg",))
    expect = F.interpolate(native.scores["sleeg"][:, None], size=(54, 96), mode="bilinear")
    torch.testing.assert_close(pred.scores["sleeg"], expect[:, 0])
    ids = F.interpolate(native.train_ids[:, None], size=(54, 96), mode="nearest-exact")
    assert torch.equal(pred.train_ids, ids[:, 0])
