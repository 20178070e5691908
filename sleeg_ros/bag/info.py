"""`sleeg bag info`: a bag's files, size, storage, time span and topics, in the layout of
`ros2 bag info`."""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

from sleeg_core.data.bags import bag_summary

SIZE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def _clock(ns: int) -> str:
    local = time.strftime("%b %d %Y %H:%M:%S", time.localtime(ns // 10**9))
    return f"{local}.{ns % 10**9:09d} ({ns // 10**9}.{ns % 10**9:09d})"


def _size(n: int) -> str:
    k = min(int(math.log(max(n, 1), 1024)), len(SIZE_UNITS) - 1)
    return f"{n / 1024**k:.1f} {SIZE_UNITS[k]}"


def info(args: argparse.Namespace) -> int:
    """`sleeg bag info`: print the summary of a bag."""
    s = bag_summary(args.bag)
    storage = {".mcap": "mcap", ".db3": "sqlite3"}
    ids = sorted({storage.get(Path(f).suffix, "?") for f in s["files"]})
    lines = [
        f"Files:             {', '.join(s['files'])}",
        f"Bag size:          {_size(s['size_bytes'])}",
        f"Storage id:        {', '.join(ids)}",
        f"Duration:          {s['duration_ns'] / 1e9:.9f}s",
    ]
    if s["messages"]:
        lines += [
            f"Start:             {_clock(s['start_ns'])}",
            f"End:               {_clock(s['end_ns'])}",
        ]
    lines.append(f"Messages:          {s['messages']}")
    label = "Topic information: "
    for topic, t in sorted(s["topics"].items()):
        lines.append(
            f"{label}Topic: {topic} | Type: {t['type']} | Count: {t['count']} | "
            f"Serialization Format: {t['format']}"
        )
        label = " " * len(label)
    if s["note"]:
        lines.append(f"Warning:           {s['note']}")
    print("\n".join(lines))
    return 0
