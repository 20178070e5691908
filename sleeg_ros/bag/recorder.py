"""The recorder of a replay: node outputs into a rosbag2 (MCAP) under their full topics, and
anomaly/score images and labels to their camera's Scorer, in its own thread."""

from __future__ import annotations

import queue
import threading
from collections import Counter
from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from sleeg_ros.bag.scorer import Scorer


class Recorder:
    """Writes node outputs into a rosbag2 under their full topics and hands anomaly/score images
    and labels to their camera's Scorer, in its own thread."""

    def __init__(self, folder: Path, topics: dict[str, str], record: bool = True) -> None:
        self.items: queue.Queue[tuple[Callable, tuple] | None] = queue.Queue()
        self.counts: Counter[str] = Counter()  # full topic → messages
        self.error = ""
        self.writer: Writer | None = None  # None: outputs are counted and scored, not written
        self.conns = {}
        if record:
            store = output_typestore()
            self.writer = Writer(folder, version=9, storage_plugin=StoragePlugin.MCAP)
            self.writer.open()
            self.conns = {
                topic: self.writer.add_connection(topic, msgtype, typestore=store)
                for topic, msgtype in topics.items()
            }
        self.thread = threading.Thread(target=self._run, name="sleeg-bag-recorder", daemon=True)
        self.thread.start()

    def output(
        self, topic: str, log_ns: int, raw: bytes, scorer: Scorer | None = None, kind: str = ""
    ) -> None:
        """Record one output; an anomaly/score or anomaly/mask image (`kind`, its output) also
        goes to its camera's `scorer`."""
        self.items.put((self._record, (topic, log_ns, raw, scorer, kind)))

    def label(self, scorer: Scorer, stamp: int, label: np.ndarray) -> None:
        self.items.put((scorer.add_label, (stamp, label)))

    def close(self) -> None:
        """Finish the queue and close the bag (its index and metadata.yaml are written here)."""
        self.items.put(None)
        self.thread.join()
        if self.writer is not None:
            self.writer.close()

    def _run(self) -> None:
        while (item := self.items.get()) is not None:
            work, args = item
            try:
                work(*args)
            except Exception as err:  # keep recording; the report names the first failure
                self.error = self.error or f"{err.__class__.__name__}: {err}"

    def _record(
        self, topic: str, log_ns: int, raw: bytes, scorer: Scorer | None, kind: str
    ) -> None:
        if self.writer is not None:
            self.writer.write(self.conns[topic], log_ns, raw)
        self.counts[topic] += 1
        if scorer is not None:
            scorer.add_output(kind, raw)


@cache
def output_typestore() -> Typestore:
    """The standard types plus sleeg_ros/msg/* registered from the .msg files (for recording)."""
    store = get_typestore(Stores.LATEST)
    types = {}
    for file in sorted(msg_dir().glob("*.msg")):
        types.update(get_types_from_msg(file.read_text(), f"sleeg_ros/msg/{file.stem}"))
    store.register(types)
    return store


def msg_dir() -> Path:
    """sleeg_ros's .msg files: the installed package share folder, else the source tree."""
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory("sleeg_ros")) / "msg"
    except (ImportError, KeyError):  # no ament index, or sleeg_ros not installed in it
        return Path(__file__).resolve().parents[2] / "msg"
