"""Labelled anomaly datasets: both layouts generated in tmp_path, errors, and the shared sets."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers.paths import shared_path

from sleeg_core.common.errors import SleegError
from sleeg_core.data.datasets import (
    LabelMap,
    detect_layout,
    iter_images,
    open_dataset,
    parse_label_map,
)

H, W = 24, 32


def write_image(path: Path, value: int, size: tuple[int, int] = (H, W)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.full((*size, 3), value, np.uint8)
    image[..., 0] = 200  # red channel: checks BGR → RGB
    assert cv2.imwrite(str(path), image[..., ::-1])


def write_label(path: Path, values: tuple[int, ...], size: tuple[int, int] = (H, W)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    label = np.full(size, values[0], np.uint8)
    for i, v in enumerate(values[1:], start=1):
        label[i, :] = v
    assert cv2.imwrite(str(path), label)


def make_road_anomaly(root: Path, stems: list[str]) -> Path:
    for i, stem in enumerate(stems):
        write_image(root / "frames" / f"{stem}.jpg", 10 * i)
        write_label(root / "frames" / f"{stem}.labels" / "labels_semantic.png", (0, 2))
    return root


def make_images_masks(
    root: Path,
    stems: list[str],
    suffix: str = "",
    ext: str = ".png",
    values: tuple[int, ...] = (0, 1, 255),
) -> Path:
    for i, stem in enumerate(stems):
        write_image(root / "images" / f"{stem}{ext}", 10 * i)
        write_label(root / "labels_masks" / f"{stem}{suffix}.png", values)
    return root


# ---------------------------------------------------------------- layouts


def test_road_anomaly_layout_maps_2_to_anomaly(tmp_path: Path) -> None:
    root = make_road_anomaly(tmp_path / "ra", ["cows", "animals02", "animals10"])
    assert detect_layout(root) == "road_anomaly"
    ds = open_dataset(root)
    assert len(ds) == 3 and ds.layout == "road_anomaly"
    assert ds.names == ["animals02", "animals10", "cows"]
    sample = ds[0]
    assert sample.image.shape == (H, W, 3) and sample.image.dtype == np.uint8
    assert np.all(sample.image[..., 0] == 200)  # RGB order
    assert sample.label.shape == (H, W) and sample.label.dtype == np.uint8
    assert set(np.unique(sample.label)) == {0, 1}
    assert sample.name == "animals02"
    assert [s.name for s in ds[1:]] == ["animals10", "cows"]
    assert ds[-1].name == "cows"


def test_images_masks_layout_natural_order(tmp_path: Path) -> None:
    root = make_images_masks(tmp_path / "fs", ["0", "1", "2", "10"], ext=".jpg")
    assert detect_layout(root) == "images_masks"
    ds = open_dataset(root)
    assert ds.names == ["0", "1", "2", "10"]
    assert set(np.unique(ds[3].label)) == {0, 1, 255}
    assert ds[3].label_path.name == "10.png"


def test_images_masks_official_smiyc_names_skip_colour_previews(tmp_path: Path) -> None:
    stems = ["validation_0000", "validation_0001"]
    root = make_images_masks(tmp_path / "smiyc", stems, suffix="_labels_semantic", ext=".webp")
    write_image(root / "labels_masks" / "validation_0000_labels_semantic_color.png", 3)
    ds = open_dataset(root)
    assert len(ds) == 2
    assert ds[0].label_path.name == "validation_0000_labels_semantic.png"
    assert set(np.unique(ds[0].label)) == {0, 1, 255}


def test_label_map_option(tmp_path: Path) -> None:
    root = make_images_masks(tmp_path / "other", ["a"], values=(0, 2, 7))
    with pytest.raises(SleegError, match=r"a\.png: raw label values \[2, 7\]"):
        open_dataset(root)[0]
    ds = open_dataset(root, label_map="0:0,2:1,*:255")
    assert np.unique(ds[0].label).tolist() == [0, 1, 255]
    ds = open_dataset(root, label_map=LabelMap({0: 0, 2: 1, 7: 1}))
    assert np.unique(ds[0].label).tolist() == [0, 1]


# ---------------------------------------------------------------- errors


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(SleegError, match="dataset folder not found"):
        open_dataset(tmp_path / "absent")


def test_unknown_layout_says_what_was_looked_for(tmp_path: Path) -> None:
    write_image(tmp_path / "x" / "a.png", 0)
    with pytest.raises(SleegError, match=r"unknown dataset layout.*labels_masks.*frames"):
        open_dataset(tmp_path / "x")


def test_image_without_label_is_named(tmp_path: Path) -> None:
    root = make_images_masks(tmp_path / "fs", ["0", "1"])
    write_image(root / "images" / "2.png", 0)
    with pytest.raises(SleegError, match=r"no label for image .*2\.png"):
        open_dataset(root)
    ra = make_road_anomaly(tmp_path / "ra", ["a"])
    write_image(ra / "frames" / "b.jpg", 0)
    with pytest.raises(SleegError, match=r"no label for image .*b\.jpg.*b\.labels"):
        open_dataset(ra)


def test_label_size_mismatch_names_both_sizes(tmp_path: Path) -> None:
    root = make_images_masks(tmp_path / "fs", ["0"])
    write_label(root / "labels_masks" / "0.png", (0, 1), size=(H, W + 8))
    with pytest.raises(SleegError, match=rf"is {W + 8}×{H} but its image .* is {W}×{H}"):
        open_dataset(root)[0]


def test_two_labels_for_one_image(tmp_path: Path) -> None:
    root = make_images_masks(tmp_path / "fs", ["0"])
    write_label(root / "labels_masks" / "0.bmp", (0, 1))
    with pytest.raises(SleegError, match="two label files"):
        open_dataset(root)


def test_empty_dataset(tmp_path: Path) -> None:
    (tmp_path / "e" / "images").mkdir(parents=True)
    (tmp_path / "e" / "labels_masks").mkdir()
    with pytest.raises(SleegError, match="no images"):
        open_dataset(tmp_path / "e")


# ---------------------------------------------------------------- label maps


def test_parse_label_map() -> None:
    lm = parse_label_map(" 0:0, 2:1 ,255:255,*:255")
    assert lm.mapping == {0: 0, 2: 1, 255: 255} and lm.default == 255
    assert str(lm) == "0:0,2:1,255:255,*:255"
    raw = np.array([[0, 2, 255, 9]], np.uint8)
    assert lm.apply(raw).tolist() == [[0, 1, 255, 255]]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("0-1", "not 'raw:label'"),
        ("0:2", "target 0, 1 or 255"),
        ("300:1", "raw in 0..255"),
        ("*:3", "target must be 0, 1 or 255"),
        ("0:0,0:1", "twice"),
        ("*:0,*:255", r"two '\*'"),
    ],
)
def test_parse_label_map_errors(text: str, message: str) -> None:
    with pytest.raises(SleegError, match=message):
        parse_label_map(text)


def test_iter_images_recursive(tmp_path: Path) -> None:
    write_image(tmp_path / "a.png", 1)
    write_image(tmp_path / "sub" / "b.jpg", 2)
    (tmp_path / "notes.txt").write_text("not an image")
    names = [name for name, image in iter_images(tmp_path) if image.shape == (H, W, 3)]
    assert names == ["a", "sub/b"]
    assert [name for name, _ in iter_images(tmp_path, recursive=False)] == ["a"]


# ---------------------------------------------------------------- shared sets


@pytest.mark.shared
@pytest.mark.parametrize(
    ("folder", "layout", "count", "values"),
    [
        ("road_anomaly", "road_anomaly", 60, {0, 1}),
        ("smiyc_roadanomaly21_val", "images_masks", 10, {0, 1, 255}),
        ("smiyc_roadobstacle21_val", "images_masks", 30, {0, 1, 255}),
        ("fs_static_val", "images_masks", 30, {0, 1, 255}),
    ],
)
def test_shared_sets(folder: str, layout: str, count: int, values: set[int]) -> None:
    ds = open_dataset(shared_path("anomaly", folder))
    assert (ds.layout, len(ds)) == (layout, count)
    found: set[int] = set()
    for sample in ds:  # reads every file: sizes match and raw labels are in the layout's map
        assert sample.label.shape == sample.image.shape[:2]
        found |= set(np.unique(sample.label).tolist())
    assert found == values


def test_cityscapes_style_layout(tmp_path):
    rng = np.random.default_rng(3)
    for city, n in (("bremen", 2), ("essen", 1)):
        (tmp_path / "leftImg8bit" / "test" / city).mkdir(parents=True)
        (tmp_path / "gtCoarse" / "test" / city).mkdir(parents=True)
        for i in range(n):
            base = f"{city}_{i:06d}_000019"
            image = rng.integers(0, 256, (16, 32, 3), dtype=np.uint8)
            label = rng.choice(np.array([0, 1, 255], np.uint8), (16, 32))
            cv2.imwrite(
                str(tmp_path / "leftImg8bit/test" / city / f"{base}_leftImg8bit.png"), image
            )
            gt = tmp_path / "gtCoarse/test" / city / f"{base}_gtCoarse_labelTrainIds.png"
            cv2.imwrite(str(gt), label)
    assert detect_layout(tmp_path) == "cityscapes"
    ds = open_dataset(tmp_path)
    assert len(ds) == 3 and ds[0].label.shape == (16, 32)
    assert set(np.unique(ds[2].label)) <= {0, 1, 255}
    (tmp_path / "gtCoarse/test/essen/essen_000000_000019_gtCoarse_labelTrainIds.png").unlink()
    with pytest.raises(SleegError, match=r"no label for image .*essen_000000_000019_leftImg8bit"):
        open_dataset(tmp_path)
