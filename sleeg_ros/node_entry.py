"""The `anomaly_node` executable's entry point: SIGINT/SIGTERM are handled before anything heavy
loads.

Importing PyTorch and rclpy takes seconds. A Ctrl-C (or `ros2 launch` stopping the node) in that
time ends the process at once, quietly, with exit code 0 as a stop requested later does; nothing
has started yet that needs taking down. Once sleeg_ros.anomaly_node.main runs, it handles the
signals itself.
"""

from __future__ import annotations

import os
import signal
from types import FrameType

STOPPED = 0  # exit code of a stop requested by SIGINT/SIGTERM
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _stop_while_loading(_signum: int, _frame: FrameType | None) -> None:
    """Before the node exists there is nothing to take down: exit now, without unwinding
    half-imported modules (which would print a KeyboardInterrupt traceback)."""
    os._exit(STOPPED)


def main() -> int:
    """Handle SIGINT/SIGTERM, then load and run the node (sleeg_ros.anomaly_node.main)."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, _stop_while_loading)
    from sleeg_ros.anomaly_node import main as run_node  # PyTorch and rclpy: seconds

    return run_node()
