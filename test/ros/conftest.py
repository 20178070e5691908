"""Every test in test/ros/ gets the `ros` marker: `pytest -m "not ros"` runs the ROS-free core.

These tests need rclpy, the colcon-built messages, rosbags or real DDS processes (scripts/setup).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
# without rclpy (a core-only install: pip install '.[dev]') these modules cannot even be imported:
# they are not collected, and the run's summary says so
ROS_MISSING = importlib.util.find_spec("rclpy") is None
collect_ignore_glob = ["test_*.py"] if ROS_MISSING else []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if ROS_MISSING:
        terminalreporter.write_line(
            "test/ros: not collected, rclpy is not installed (scripts/setup installs it)"
        )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.ros)
