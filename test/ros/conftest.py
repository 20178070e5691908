"""Every test in test/ros/ gets the `ros` marker: `pytest -m "not ros"` runs the ROS-free core.

These tests need rclpy, the colcon-built messages, rosbags or real DDS processes (scripts/setup).
"""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.ros)
