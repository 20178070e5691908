"""Reading rosbag2 files (.mcap, .db3, bag folders) with `rosbags`: opening a bag (an MCAP file
that was cut short is read up to its last complete record, and `BagHandle.note` says so), the
decoded frames of an image topic, and what `ros2 bag info` shows."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from rosbags.highlevel import AnyReader
from tqdm import tqdm

from sleeg_core.common.errors import SleegError
from sleeg_core.data.bags.cut_mcap import CutMcapPath, mcap_complete_end, storage_file
from sleeg_core.data.bags.messages import IMAGE_TYPES, TYPESTORE, decode_image, header_stamp
from sleeg_core.data.image_msgs import BadFrameError


@dataclass
class BagFrame:
    index: int  # position among the topic's messages
    stamp_ns: int  # header stamp
    image: np.ndarray | None  # H×W×3 RGB, None when the frame could not be decoded
    error: str = ""


@dataclass
class BagHandle:
    """An open bag: the rosbags reader and, for a cut-short MCAP file, what could be read."""

    reader: AnyReader
    path: Path
    note: str = ""  # non-empty when the bag is damaged and only partly readable


def _open_cut_mcap(path: Path, err: Exception) -> BagHandle:
    """Read the complete part of a cut-short MCAP file, or raise the original error."""
    file = storage_file(path)
    cut = mcap_complete_end(file) if file else 0
    reason = str(err).rstrip(".")
    if file is None or cut <= 8:
        raise SleegError(f"cannot open bag {path}: {reason}") from err
    try:
        reader = AnyReader([CutMcapPath(file, cut)], default_typestore=TYPESTORE)  # type: ignore[list-item]
        reader.open()
    except Exception:
        raise SleegError(f"cannot open bag {path}: {reason}") from err
    if not reader.message_count:
        reader.close()
        raise SleegError(f"cannot open bag {path}: {reason}; no complete message before the cut")
    note = (
        f"{file} is cut short or damaged ({reason}): read its {reader.message_count} complete "
        f"message(s) in the first {cut:,} of {file.stat().st_size:,} bytes; the rest is lost"
    )
    return BagHandle(reader, path, note)


def open_bag(path: Path) -> BagHandle:
    """Open a bag folder or storage file; a cut-short MCAP file is read as far as it is whole."""
    path = Path(path)
    if not path.exists():
        raise SleegError(f"bag not found: {path}")
    try:
        reader = AnyReader([path], default_typestore=TYPESTORE)
        reader.open()
    except Exception as err:  # rosbags raises several types for foreign or broken files
        return _open_cut_mcap(path, err)
    return BagHandle(reader, path)


def open_reader(path: Path) -> AnyReader:
    """The open rosbags reader of a bag (see open_bag)."""
    return open_bag(path).reader


def topic_connections(reader: AnyReader, topic: str, path: Path) -> list:
    conns = [c for c in reader.connections if c.topic == topic]
    if not conns:
        have = ", ".join(f"{c.topic} [{c.msgtype}]" for c in reader.connections) or "none"
        raise SleegError(f"bag {path} has no topic '{topic}'; topics: {have}")
    if conns[0].msgtype not in IMAGE_TYPES:
        raise SleegError(f"topic '{topic}' in {path} is {conns[0].msgtype}, not an image topic")
    return conns


def iter_frames(path: Path, topic: str, every: int = 1) -> Iterator[BagFrame]:
    """Every k-th frame of an image topic, decoded; undecodable frames carry an error."""
    reader = open_reader(path)
    try:
        conns = topic_connections(reader, topic, path)
        for i, (conn, _t, raw) in enumerate(reader.messages(connections=conns)):
            if i % every:
                continue
            msg = reader.deserialize(raw, conn.msgtype)
            stamp = header_stamp(raw)
            try:
                yield BagFrame(i, stamp, decode_image(msg, conn.msgtype))
            except BadFrameError as err:
                yield BagFrame(i, stamp, None, str(err))
    finally:
        reader.close()


def extract_frames(path: Path, topic: str, dest: Path, every: int, progress: bool) -> list[Path]:
    """Write every k-th frame of `topic` as PNG into `dest` once; later calls reuse them."""
    path = Path(path)
    key = {"bag": str(path.resolve()), "topic": topic, "every": every}
    done = dest / "frames.json"
    if done.is_file() and json.loads(done.read_text()).get("key") == key:
        return sorted(dest.glob("*.png"))
    dest.mkdir(parents=True, exist_ok=True)
    out, bad = [], 0
    frames = iter_frames(path, topic, every)
    for frame in tqdm(frames, desc=f"extracting {path.name}", unit="frame", disable=not progress):
        if frame.image is None:
            bad += 1
            continue
        file = dest / f"{frame.index:07d}.png"
        cv2.imwrite(str(file), cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR))
        out.append(file)
    if bad:
        tqdm.write(f"{path}: skipped {bad} undecodable frame(s) on {topic}")
    done.write_text(json.dumps({"key": key, "frames": len(out), "skipped": bad}))
    return out


def bag_summary(path: Path) -> dict:
    """What `ros2 bag info` shows: storage files, size, time span, message counts per topic."""
    bag = open_bag(path)
    reader = bag.reader
    try:
        files = [p for p in ([path] if path.is_file() else sorted(path.iterdir())) if p.is_file()]
        topics: dict[str, dict] = {}
        for conn in reader.connections:
            entry = topics.setdefault(
                conn.topic, {"type": conn.msgtype, "count": 0, "format": "cdr"}
            )
            entry["count"] += conn.msgcount
        count = reader.message_count
        return {
            "path": str(path),
            "files": [str(f) for f in files if f.suffix in (".mcap", ".db3")],
            "size_bytes": sum(f.stat().st_size for f in files),
            "messages": count,
            "start_ns": reader.start_time if count else None,
            "end_ns": reader.end_time - 1 if count else None,  # rosbags: one past the last
            "duration_ns": max(reader.duration - 1, 0) if count else 0,
            "topics": topics,
            "note": bag.note,
        }
    finally:
        reader.close()
