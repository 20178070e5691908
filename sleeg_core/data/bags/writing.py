"""Writing image streams as rosbag2 folders, as `ros2 bag record` writes them: `--out drive.mcap`
makes `drive/` holding `drive.mcap` and `metadata.yaml` (`drive.db3` the same with SQLite)."""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer

from sleeg_core.common.errors import SleegError
from sleeg_core.data.bags.messages import IMAGE_TYPES, TYPESTORE, image_message


def bag_folder(path: Path) -> tuple[Path, StoragePlugin]:
    """The rosbag2 folder and storage for an output path: x.db3 → x/ (SQLite), else MCAP."""
    path = Path(path)
    plugin = StoragePlugin.SQLITE3 if path.suffix == ".db3" else StoragePlugin.MCAP
    return (path.with_suffix("") if path.suffix in (".db3", ".mcap") else path), plugin


def write_frames(
    path: Path,
    topics: dict[str, bool],
    frames: Iterable[dict[str, np.ndarray]],
    rate_hz: float = 10.0,
    frame_id: str = "camera",
    start_ns: int = 1_700_000_000 * 10**9,
) -> tuple[Path, int]:
    """Stream frames into a new rosbag2; returns the bag folder and the number of frames.

    `topics` maps each topic to whether it carries JPEG CompressedImage (else Image: rgb8 for
    H×W×3, mono8 for H×W). Each item of `frames` maps topics to that frame's arrays, all
    written with the same header stamp and log time, `1/rate_hz` s after the previous frame's.
    A failed write leaves no partial bag behind.
    """
    bag_dir, plugin = bag_folder(path)
    if bag_dir.exists():
        raise SleegError(f"{bag_dir} exists already: choose another output")
    if not rate_hz > 0:
        raise SleegError(f"the rate must be positive, got {rate_hz}")
    period = round(1e9 / rate_hz)
    n = 0
    try:
        with Writer(bag_dir, version=9, storage_plugin=plugin) as writer:
            conns = {
                topic: writer.add_connection(topic, IMAGE_TYPES[int(packed)], typestore=TYPESTORE)
                for topic, packed in topics.items()
            }
            for n, frame in enumerate(frames, start=1):
                stamp = start_ns + (n - 1) * period
                for topic, array in frame.items():
                    conn = conns[topic]
                    msg = image_message(array, stamp, frame_id, topics[topic])
                    writer.write(conn, stamp, TYPESTORE.serialize_cdr(msg, conn.msgtype))
    except BaseException:
        shutil.rmtree(bag_dir, ignore_errors=True)
        raise
    return bag_dir, n


def write_image_bag(
    path: Path,
    streams: dict[str, list[np.ndarray]],
    rate_hz: float = 10.0,
    compressed: tuple[str, ...] = (),
    frame_id: str = "camera",
    start_ns: int = 1_700_000_000 * 10**9,
) -> Path:
    """Write image streams (topic → frames, frame i of each at the same stamp) as a rosbag2.

    `path` ending in .db3 uses SQLite, otherwise MCAP; the bag is a folder (metadata.yaml +
    storage file), as `ros2 bag record` writes it. Topics in `compressed` carry JPEG.
    """
    length = max((len(frames) for frames in streams.values()), default=0)
    rows = (
        {topic: frames[i] for topic, frames in streams.items() if i < len(frames)}
        for i in range(length)
    )
    topics = {topic: topic in compressed for topic in streams}
    return write_frames(path, topics, rows, rate_hz, frame_id, start_ns)[0]
