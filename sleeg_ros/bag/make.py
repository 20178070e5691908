"""`sleeg bag make`: an image folder (with label masks) or a labelled dataset → a rosbag2 at a fixed
rate, frames read one at a time in file-name order."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

from tqdm import tqdm

from sleeg_core.common.errors import SleegError
from sleeg_core.data.bags import bag_folder, write_frames
from sleeg_core.data.datasets import LABEL_SUFFIXES, open_dataset
from sleeg_core.data.images import list_images, read_label, read_rgb
from sleeg_core.data.labels import LabelMap, parse_label_map

PROJECT_LABELS = "0:0,1:1,255:255"  # the project convention: 0 normal, 1 anomaly, 255 void


def _label_files(folder: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for path in list_images(folder, recursive=False):
        if path.stem in files:
            raise SleegError(f"two label files for one stem: {files[path.stem]} and {path}")
        files[path.stem] = path
    return files


def _folder_pairs(images: Path, labels: Path | None) -> list[tuple[Path, Path | None]]:
    frames = list_images(images, recursive=False)
    if not frames:
        raise SleegError(f"no images in {images}")
    if labels is None:
        return [(f, None) for f in frames]
    files = _label_files(labels)
    pairs = []
    for frame in frames:
        stems = [frame.stem + suffix for suffix in ("", *LABEL_SUFFIXES)]
        label = next((files[s] for s in stems if s in files), None)
        if label is None:
            raise SleegError(f"no label for {frame} in {labels} (looked for {', '.join(stems)})")
        pairs.append((frame, label))
    return pairs


def _folder_frames(
    pairs: list[tuple[Path, Path | None]], label_map: LabelMap, topic: str, label_topic: str
) -> Iterator[dict]:
    for image_path, label_path in pairs:
        frame = {topic: read_rgb(image_path)}
        if label_path is not None:
            label = label_map.apply(read_label(label_path), str(label_path))
            if label.shape != frame[topic].shape[:2]:
                raise SleegError(
                    f"label {label_path} is {label.shape[1]}×{label.shape[0]}, its image "
                    f"{image_path} {frame[topic].shape[1]}×{frame[topic].shape[0]}"
                )
            frame[label_topic] = label
        yield frame


def make(args: argparse.Namespace) -> int:
    """`sleeg bag make`: write the frames (and labels) of --images or --dataset as a rosbag2."""
    if args.labels and not args.images:
        raise SleegError("--labels goes with --images (a --dataset has its own labels)")
    image_topic = f"{args.topic.rstrip('/')}/compressed" if args.compressed else args.topic
    label_topic = args.label_topic or f"{args.topic.rstrip('/')}/labels"
    if args.dataset:
        dataset = open_dataset(args.dataset, args.label_map)
        total, has_labels = len(dataset), True
        frames = ({image_topic: sample.image, label_topic: sample.label} for sample in dataset)
    else:
        pairs = _folder_pairs(args.images, args.labels)
        total, has_labels = len(pairs), args.labels is not None
        label_map = parse_label_map(args.label_map or PROJECT_LABELS)
        frames = _folder_frames(pairs, label_map, image_topic, label_topic)
    topics = {image_topic: args.compressed}
    if has_labels:
        topics[label_topic] = False
    bag_dir, _ = bag_folder(args.out)
    progress = tqdm(frames, total=total, desc=f"writing {bag_dir}", unit="frame")
    bag_dir, n = write_frames(args.out, topics, progress, args.rate, args.frame_id)
    print(f"wrote {bag_dir}: {n} frames at {args.rate:g} Hz on {', '.join(topics)}")
    return 0
