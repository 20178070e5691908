"""rosbag2 (.mcap, .db3, bag folders) reading and writing with `rosbags`: image streams.

Shared by `sleeg train` (bag sources), `sleeg eval` (labelled bags) and `sleeg bag`. No ROS
installation is needed, only the optional `rosbags` package (the `ros` extra): without it,
importing this module raises MissingPackageError saying so.

A bag written here is a rosbag2 folder as `ros2 bag record` writes it: `--out drive.mcap` makes
`drive/` holding `drive.mcap` and `metadata.yaml` (`drive.db3` the same with SQLite). An MCAP
file that was cut short (a recording that was killed before it wrote its footer) is read up to
its last complete record; `BagHandle.note` says so.
"""

from __future__ import annotations

import io
import json
import shutil
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np
from tqdm import tqdm

from sleeg_core.common.errors import MissingPackageError, SleegError
from sleeg_core.data.image_msgs import BadFrameError, compressed_to_rgb, image_to_rgb
from sleeg_core.data.labels import AnomalySample, LabelMap

try:
    from rosbags.highlevel import AnyReader
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore
except ImportError as err:
    raise MissingPackageError(
        f"reading and writing rosbag2 files needs the 'rosbags' package ({err}): "
        "pip install rosbags, or pip install '.[ros]' (scripts/setup installs it)",
        name="rosbags",
    ) from err

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
MAX_PIXELS = 8192 * 8192
TYPESTORE = get_typestore(Stores.LATEST)
MCAP_MAGIC = b"\x89MCAP0\r\n"
MCAP_DATA_END = 0x0F
# an MCAP footer with no summary section (rosbags then scans the data section)
MCAP_FOOTER = b"\x02" + struct.pack("<QQQI", 20, 0, 0, 0) + MCAP_MAGIC


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


# ---------------------------------------------------------------- reading


class _CutMcapFile(io.RawIOBase):
    """The complete records of a cut-short MCAP file followed by a valid footer."""

    def __init__(self, path: Path, cut: int) -> None:
        super().__init__()
        self._file = path.open("rb")
        self._cut = cut
        self._size = cut + len(MCAP_FOOTER)
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buffer: memoryview) -> int:
        out = memoryview(buffer).cast("B")
        if self._pos < self._cut:
            self._file.seek(self._pos)
            n = self._file.readinto(out[: min(len(out), self._cut - self._pos)]) or 0
        else:
            tail = MCAP_FOOTER[self._pos - self._cut : self._pos - self._cut + len(out)]
            out[: len(tail)] = tail
            n = len(tail)
        self._pos += n
        return n

    def close(self) -> None:
        self._file.close()
        super().close()


class CutMcapPath:
    """A rosbags reader path (`RPath`) presenting a cut-short MCAP file as a complete one."""

    def __init__(self, path: Path, cut: int) -> None:
        self.path, self.cut = path, cut
        self.suffix, self.name = path.suffix, path.name

    def exists(self) -> bool:
        return True

    def is_dir(self) -> bool:
        return False

    def open(self, *_args: object, **_kwargs: object) -> BinaryIO:
        return io.BufferedReader(_CutMcapFile(self.path, self.cut))  # type: ignore[return-value]

    def read_text(self, encoding: str | None = None) -> str:
        raise OSError(f"{self.path} is not a text file")

    def __str__(self) -> str:
        return str(self.path)


def mcap_complete_end(path: Path) -> int:
    """Offset after the last complete record of the MCAP data section (0: not an MCAP file)."""
    size = path.stat().st_size
    with path.open("rb") as f:
        if f.read(8) != MCAP_MAGIC:
            return 0
        pos = 8
        while pos + 9 <= size:
            f.seek(pos)
            op, length = struct.unpack("<BQ", f.read(9))
            if op == MCAP_DATA_END or pos + 9 + length > size:
                break
            pos += 9 + length
    return pos


def _storage_file(path: Path) -> Path | None:
    """The single .mcap file of a bag path (a file or a bag folder), else None."""
    if path.is_file():
        return path if path.suffix == ".mcap" else None
    files = sorted(path.glob("*.mcap"))
    return files[0] if len(files) == 1 else None


def _open_cut_mcap(path: Path, err: Exception) -> BagHandle:
    """Read the complete part of a cut-short MCAP file, or raise the original error."""
    file = _storage_file(path)
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


def decode_image(msg: object, msgtype: str) -> np.ndarray:
    """A deserialised Image/CompressedImage → H×W×3 RGB (BadFrameError when it cannot)."""
    if msgtype.endswith("CompressedImage"):
        return compressed_to_rgb(msg, MAX_PIXELS)
    return image_to_rgb(msg, MAX_PIXELS)


def header_stamp(raw: bytes | memoryview) -> int:
    """The header stamp (ns) of a CDR message whose first field is a std_msgs/Header."""
    order = "<" if raw[1] == 1 else ">"  # encapsulation: CDR_LE or CDR_BE
    sec, nanosec = struct.unpack_from(f"{order}iI", raw, 4)
    return sec * 10**9 + nanosec


def with_stamp(raw: bytes | memoryview, stamp_ns: int) -> bytes:
    """A copy of a CDR message (Header first) with its header stamp replaced."""
    order = "<" if raw[1] == 1 else ">"
    out = bytearray(raw)
    struct.pack_into(f"{order}iI", out, 4, stamp_ns // 10**9, stamp_ns % 10**9)
    return bytes(out)


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


# ---------------------------------------------------------------- writing


def image_message(image: np.ndarray, stamp_ns: int, frame_id: str, compressed: bool) -> object:
    """An H×W×3 RGB (or H×W mono8) array as a rosbags Image / CompressedImage message."""
    msgs = TYPESTORE.types
    header = msgs["std_msgs/msg/Header"](
        stamp=msgs["builtin_interfaces/msg/Time"](sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9),
        frame_id=frame_id,
    )
    if compressed:
        bgr = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])
        if not ok:
            raise SleegError("JPEG encoding failed")
        return msgs["sensor_msgs/msg/CompressedImage"](header=header, format="jpeg", data=buf)
    encoding = "mono8" if image.ndim == 2 else "rgb8"
    image = np.ascontiguousarray(image)
    return msgs["sensor_msgs/msg/Image"](
        header=header,
        height=image.shape[0],
        width=image.shape[1],
        encoding=encoding,
        is_bigendian=0,
        step=image.strides[0],
        data=image.reshape(-1),
    )


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


# ---------------------------------------------------------------- labelled bags for `sleeg eval`


class LabelledBag:
    """A rosbag2 with an image topic and its label topic (`<image topic>/labels`, mono8 0/1/255,
    matched by header stamp) as a labelled dataset: len() and iteration over AnomalySample."""

    def __init__(self, path: Path, label_map: LabelMap) -> None:
        self.path, self.label_map = Path(path), label_map
        summary = bag_summary(self.path)
        images = [
            t
            for t, info in summary["topics"].items()
            if info["type"] in IMAGE_TYPES and not t.endswith("/labels")
        ]
        pairs = [(t, f"{t.removesuffix('/compressed')}/labels") for t in images]
        pairs = [(i, lab) for i, lab in pairs if lab in summary["topics"]]
        if len(pairs) != 1:
            have = ", ".join(summary["topics"]) or "none"
            raise SleegError(
                f"bag {self.path} needs exactly one image topic with a '<topic>/labels' topic "
                f"to be evaluated; topics: {have}"
            )
        self.image_topic, self.label_topic = pairs[0]
        self.count = summary["topics"][self.label_topic]["count"]

    def __len__(self) -> int:
        return self.count

    def _labels(self) -> dict[int, np.ndarray]:
        reader = open_reader(self.path)
        try:
            conns = topic_connections(reader, self.label_topic, self.path)
            labels = {}
            for conn, _t, raw in reader.messages(connections=conns):
                msg = reader.deserialize(raw, conn.msgtype)
                rows = np.frombuffer(msg.data, np.uint8, count=msg.step * msg.height)
                label = rows.reshape(msg.height, msg.step)[:, : msg.width]
                labels[header_stamp(raw)] = label
            return labels
        finally:
            reader.close()

    def __iter__(self) -> Iterator[AnomalySample]:
        labels = self._labels()
        for frame in iter_frames(self.path, self.image_topic):
            label = labels.get(frame.stamp_ns)
            if label is None:
                continue  # only labelled frames are evaluated
            if frame.image is None:
                raise SleegError(
                    f"{self.path}: frame {frame.index} cannot be decoded: {frame.error}"
                )
            name = f"{frame.index:06d}"
            if label.shape != frame.image.shape[:2]:
                raise SleegError(
                    f"{self.path}: label {label.shape} and frame {frame.image.shape[:2]} of "
                    f"frame {name} differ in size"
                )
            source = f"{self.path}:{name}"
            yield AnomalySample(
                frame.image, self.label_map.apply(label, source), name, self.path, self.path
            )
