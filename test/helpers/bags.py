"""Reading bags the node wrote and running `sleeg bag` as a child process, for tests under
test/ros/ (needs rosbags and the colcon-built messages)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from rosbags.highlevel import AnyReader

from sleeg_ros.bag.recorder import output_typestore

from .node import node_params

CLI = "import sys; from sleeg_core.cli import main; sys.exit(main(sys.argv[1:]))"


def read_bag(path: Path) -> dict[str, list]:
    """topic → deserialised messages (custom sleeg_ros types included)."""
    out: dict[str, list] = {}
    with AnyReader([path], default_typestore=output_typestore()) as reader:
        for conn, _t, raw in reader.messages():
            out.setdefault(conn.topic, []).append(reader.deserialize(raw, conn.msgtype))
    return out


def stamp(msg) -> int:
    """A message's header stamp in nanoseconds."""
    return msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec


def pixels(msg) -> np.ndarray:
    """An Image message's pixels (H×W for one channel, else H×W×C)."""
    dtype = np.float32 if msg.encoding == "32FC1" else np.uint8
    array = np.frombuffer(msg.data, dtype).reshape(msg.height, msg.width, -1)
    return array[..., 0] if array.shape[-1] == 1 else array


def cli(env: dict[str, str], *args: str) -> subprocess.Popen:
    """`sleeg *args` as a child process with `env` (stdout and stderr piped)."""
    return subprocess.Popen(
        [sys.executable, "-c", CLI, *args], env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def eval_args(bag: Path, topic: str, out: Path, *extra: str) -> list[str]:
    """`sleeg bag eval` arguments for one image topic of `bag`."""
    return ["bag", "eval", "--bag", str(bag), "--image-topic", topic, "--out", str(out), *extra]


def node_overrides(tiny_model) -> list[str]:
    """`-p name:=value` pairs that run the tiny model with threshold 0 on a reliable input."""
    params = node_params(tiny_model, "threshold:=0.0", "reliable_input:=true")
    return [a for p in params for a in ("-p", p)]
