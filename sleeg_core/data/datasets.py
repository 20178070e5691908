"""Labelled anomaly datasets on disk, read as (RGB image, label, name) samples.

Labels come out in the project convention: uint8 H×W, 0 normal, 1 anomaly, 255 void. Three
layouts are recognised by `detect_layout`:

- "road_anomaly" (Road Anomaly, original release): `frames/<stem>.jpg` with its label in
  `frames/<stem>.labels/labels_semantic.png`; raw labels 0 normal, 2 anomaly, no void.
- "images_masks" (Fishyscapes and SegmentMeIfYouCan, as distributed for validation):
  `images/<stem>.<ext>` with its label in `labels_masks/`, named `<stem>.png` or
  `<stem><suffix>.png` for a suffix in LABEL_SUFFIXES (the official SegmentMeIfYouCan naming is
  `validation_0000_labels_semantic.png`); raw labels 0 normal, 1 anomaly, 255 void.
- "cityscapes" (Cityscapes-style, e.g. Lost & Found): `leftImg8bit/**/<base>_leftImg8bit.<ext>`
  with its label at the same relative path under `gtCoarse/` or `gtFine/`, named
  `<base>_gt{Coarse,Fine}_{labelTrainIds,labelIds}.png`; raw labels 0 normal, 1 anomaly, 255 void
  by default (Fishyscapes Lost & Found); other conventions via a label map.

Raw labels are mapped through a label map (`parse_label_map`, e.g. "0:0,2:1,*:255"); each layout
has a strict default, so a value the layout does not define raises SleegError naming the file.

>>> ds = open_dataset("../shared/data/anomaly/road_anomaly")  # doctest: +SKIP
>>> len(ds), ds.layout, ds[0].image.shape, ds[0].label.dtype  # doctest: +SKIP
(60, 'road_anomaly', (720, 1280, 3), dtype('uint8'))
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import overload

import numpy as np

from sleeg_core.common.errors import SleegError
from sleeg_core.data.images import IMAGE_SUFFIXES, list_images, read_label, read_rgb
from sleeg_core.data.labels import AnomalySample, LabelMap, parse_label_map

LABEL_SUFFIXES = ("_labels_semantic", "_labels", "_label", "_mask", "_gt")
DEFAULT_LABEL_MAPS = {
    "road_anomaly": "0:0,2:1",
    "images_masks": "0:0,1:1,255:255",
    "cityscapes": "0:0,1:1,255:255",
}
CITYSCAPES_LABELS = tuple(
    f"_{gt}_{kind}" for gt in ("gtCoarse", "gtFine") for kind in ("labelTrainIds", "labelIds")
)
LAYOUT_HELP = (
    "images/ + labels_masks/ (Fishyscapes / SegmentMeIfYouCan), "
    "frames/*.jpg + frames/<stem>.labels/labels_semantic.png (Road Anomaly) or "
    "leftImg8bit/ + gtCoarse/ or gtFine/ (Cityscapes-style)"
)


# ---------------------------------------------------------------- layouts


def _natural_key(path: Path) -> list[int | str]:
    """Sort "2" before "10": digit runs compare as numbers."""
    return [int(tok) if tok.isdigit() else tok for tok in re.split(r"(\d+)", path.name)]


def detect_layout(path: str | Path) -> str:
    """The layout name of the dataset folder `path` ("road_anomaly", "images_masks" or
    "cityscapes")."""
    root = Path(path)
    if not root.is_dir():
        raise SleegError(f"dataset folder not found: {root}")
    if (root / "images").is_dir() and (root / "labels_masks").is_dir():
        return "images_masks"
    if (root / "frames").is_dir() and any((root / "frames").glob("*.labels")):
        return "road_anomaly"
    if (root / "leftImg8bit").is_dir():
        return "cityscapes"
    raise SleegError(f"unknown dataset layout in {root}: looked for {LAYOUT_HELP}")


def _road_anomaly_pairs(root: Path) -> list[tuple[Path, Path]]:
    frames = root / "frames"
    return [
        (image, frames / f"{image.stem}.labels" / "labels_semantic.png")
        for image in list_images(frames, recursive=False)
    ]


def _images_masks_pairs(root: Path) -> list[tuple[Path, Path]]:
    labels: dict[str, Path] = {}
    for label in list_images(root / "labels_masks", recursive=False):
        if label.stem.endswith("_color"):  # SegmentMeIfYouCan colour previews, not labels
            continue
        if label.stem in labels:
            raise SleegError(f"two label files for one image: {labels[label.stem]} and {label}")
        labels[label.stem] = label
    pairs = []
    for image in list_images(root / "images", recursive=False):
        candidates = [image.stem + suffix for suffix in ("", *LABEL_SUFFIXES)]
        found = next((labels[c] for c in candidates if c in labels), None)
        if found is None:
            raise SleegError(
                f"no label for image {image}: looked in {root / 'labels_masks'} for "
                f"{', '.join(candidates)} (any image suffix)"
            )
        pairs.append((image, found))
    return pairs


def _cityscapes_pairs(root: Path) -> list[tuple[Path, Path]]:
    pairs = []
    for image in sorted((root / "leftImg8bit").rglob("*_leftImg8bit.*")):
        folder = image.parent.relative_to(root / "leftImg8bit")
        base = image.name.split("_leftImg8bit")[0]
        candidates = [
            root / suffix.split("_")[1] / folder / f"{base}{suffix}.png"
            for suffix in CITYSCAPES_LABELS
        ]
        pairs.append((image, next((c for c in candidates if c.is_file()), candidates[0])))
    return pairs


_PAIRERS = {
    "road_anomaly": _road_anomaly_pairs,
    "images_masks": _images_masks_pairs,
    "cityscapes": _cityscapes_pairs,
}


# ---------------------------------------------------------------- datasets


class AnomalyDataset(Sequence[AnomalySample]):
    """Labelled images of one dataset folder, read lazily, in natural name order."""

    def __init__(
        self, root: Path, layout: str, pairs: list[tuple[Path, Path]], label_map: LabelMap
    ) -> None:
        self.root = root
        self.layout = layout
        self.pairs = pairs
        self.label_map = label_map

    @property
    def names(self) -> list[str]:
        return [image.stem for image, _ in self.pairs]

    def __len__(self) -> int:
        return len(self.pairs)

    @overload
    def __getitem__(self, index: int) -> AnomalySample: ...
    @overload
    def __getitem__(self, index: slice) -> list[AnomalySample]: ...
    def __getitem__(self, index: int | slice) -> AnomalySample | list[AnomalySample]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        image_path, label_path = self.pairs[index]
        image = read_rgb(image_path)
        label = self.label_map.apply(read_label(label_path), str(label_path))
        if label.shape != image.shape[:2]:
            raise SleegError(
                f"label {label_path} is {label.shape[1]}×{label.shape[0]} but its image "
                f"{image_path} is {image.shape[1]}×{image.shape[0]}"
            )
        return AnomalySample(image, label, image_path.stem, image_path, label_path)

    def __repr__(self) -> str:
        return f"AnomalyDataset({str(self.root)!r}, layout={self.layout!r}, n={len(self)})"


def is_bag(path: Path) -> bool:
    """A rosbag2: an .mcap/.db3 file or a folder with metadata.yaml."""
    return path.suffix in (".mcap", ".db3") or (path / "metadata.yaml").is_file()


def open_dataset(
    path: str | Path, label_map: str | LabelMap | None = None
) -> Sequence[AnomalySample] | Iterable[AnomalySample]:
    """Open a labelled anomaly dataset folder, or a rosbag2 with `<image topic>/labels` (read by
    `sleeg_core.data.bags`, needs the `rosbags` package); `label_map` overrides the layout's
    default.

    Every image of a folder must have a label file (checked here); sizes and label values are
    checked when a sample is read.
    """
    root = Path(path)
    if is_bag(root):
        from sleeg_core.data.bags import LabelledBag  # optional rosbags; it imports this module

        label_map = label_map or DEFAULT_LABEL_MAPS["images_masks"]
        return LabelledBag(
            root, parse_label_map(label_map) if isinstance(label_map, str) else label_map
        )
    layout = detect_layout(root)
    pairs = sorted(_PAIRERS[layout](root), key=lambda pair: _natural_key(pair[0]))
    if not pairs:
        raise SleegError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in dataset {root}")
    for image, label in pairs:
        if not label.is_file():
            raise SleegError(f"no label for image {image}: expected {label}")
    if label_map is None:
        label_map = DEFAULT_LABEL_MAPS[layout]
    if isinstance(label_map, str):
        label_map = parse_label_map(label_map)
    return AnomalyDataset(root, layout, pairs, label_map)


def iter_images(folder: str | Path, recursive: bool = True) -> Iterator[tuple[str, np.ndarray]]:
    """Unlabelled images under `folder` (for training or inference): (relative name, RGB)."""
    root = Path(folder)
    for path in list_images(root, recursive=recursive):
        yield path.relative_to(root).with_suffix("").as_posix(), read_rgb(path)
