"""Where training frames come from: image folders and rosbag2 topics, mixed freely.

Labels are never read. Bag frames are extracted once into `<out>/frames/<bag>/` (every k-th frame
of the topic) by `sleeg_core.data.bags`, which needs the `rosbags` package (the `ros` extra).
Unreadable images are skipped and counted; it is an error only when no frame is usable.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from sleeg_core.common.errors import SleegError
from sleeg_core.data.images import MIN_SIDE, list_images

SOURCE_TYPES = ("images", "bag")


@dataclass
class SourceConfig:
    """type: images (a folder, recursive) | bag (.mcap, .db3 or a bag folder)."""

    type: str = "images"
    path: str = ""
    topic: str = ""  # bag: a sensor_msgs/Image or CompressedImage topic
    every: int = 1  # keep every k-th frame


def readable(path: Path) -> bool:
    """True when the file decodes as an image of at least MIN_SIDE pixels a side."""
    data = np.fromfile(path, dtype=np.uint8)
    if data.size == 0:
        return False
    image = cv2.imdecode(data, cv2.IMREAD_REDUCED_GRAYSCALE_2)
    return image is not None and min(image.shape[:2]) * 2 >= MIN_SIDE


def source_frames(source: SourceConfig, cache: Path, progress: bool) -> list[Path]:
    """The frame files of one source (bag frames extracted into `cache` first)."""
    if source.type not in SOURCE_TYPES:
        raise SleegError(f"unknown source type '{source.type}'; choose one of {SOURCE_TYPES}")
    if source.every < 1:
        raise SleegError(f"source {source.path}: every must be ≥ 1, got {source.every}")
    path = Path(source.path)
    if source.type == "images":
        return list_images(path)[:: source.every]
    if not source.topic:
        raise SleegError(f"bag source {path}: set its image topic")
    from sleeg_core.data.bags import extract_frames  # optional rosbags: imported only for a bag

    return extract_frames(path, source.topic, cache / path.stem, source.every, progress)


def collect_frames(
    sources: list[SourceConfig], cache: Path, progress: bool = True
) -> tuple[list[Path], int]:
    """All usable frames of all sources, and how many unreadable ones were skipped."""
    if not sources:
        raise SleegError("no data sources configured (data.sources)")
    candidates = [f for s in sources for f in source_frames(s, cache, progress)]
    if not candidates:
        raise SleegError(f"no images found in {', '.join(s.path for s in sources)}")
    checks = tqdm(candidates, desc="checking frames", unit="img", disable=not progress)
    frames = [f for f in checks if readable(f)]
    skipped = len(candidates) - len(frames)
    if not frames:
        raise SleegError(f"none of the {len(candidates)} frames could be read")
    if skipped:
        tqdm.write(f"skipped {skipped} unreadable frame(s) of {len(candidates)}")
    return frames, skipped
