"""The `anomaly_node` executable's entry point: SIGINT/SIGTERM are handled before anything heavy
loads.

Importing PyTorch and rclpy takes seconds. A Ctrl-C (or `ros2 launch` stopping the node) in that
time ends the process at once, quietly, with exit code 0 as a stop requested later does; nothing
has started yet that needs taking down. Once sleeg_ros.anomaly_node.main runs, it handles the
signals itself, and when it returns (the node and its context taken down in order) the process
ends without the interpreter's own teardown of PyTorch: after a torch.compile that took 5.7 s on
2 busy CPU cores, past the 5 s `ros2 launch` waits before it sends SIGTERM, which then killed it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from types import FrameType
from typing import NoReturn

STOPPED = 0  # exit code of a stop requested by SIGINT/SIGTERM
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _stop_while_loading(_signum: int, _frame: FrameType | None) -> None:
    """Before the node exists there is nothing to take down: exit now, without unwinding
    half-imported modules (which would print a KeyboardInterrupt traceback)."""
    os._exit(STOPPED)


def main() -> NoReturn:
    """Handle SIGINT/SIGTERM, load and run the node (sleeg_ros.anomaly_node.main), then end the
    process with its exit code once everything it printed is out."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, _stop_while_loading)
    from sleeg_ros.anomaly_node import main as run_node  # PyTorch and rclpy: seconds

    code = run_node()
    sys.stdout.flush()
    sys.stderr.flush()
    ctypes.CDLL(None).fflush(None)  # the C streams too (ROS logging writes there)
    os._exit(code)
