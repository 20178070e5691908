"""Shared fixtures: the environment for real ROS 2 processes and a tiny random-weight model.

Helpers (paths, generated data, the ROS probe) are in test/helpers; tests import them from there.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def ros_env() -> dict[str, str]:
    """Environment for child ROS processes: loopback-only DDS and this run's domain id."""
    pytest.importorskip("rclpy", reason="rclpy not installed: run scripts/setup")
    env = dict(os.environ)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env.setdefault("ROS_DOMAIN_ID", str(10 + os.getpid() % 90))
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture
def python() -> str:
    return sys.executable


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> dict[str, Path]:
    """A random-weight ENet checkpoint and a matching random head file (threshold 0)."""
    import torch

    from sleeg_core.model.head import HeadConfig, OoDHead
    from sleeg_core.model.headfile import HeadFile
    from sleeg_core.segmentors.enet import ENetSegmentor

    folder = tmp_path_factory.mktemp("tiny_model")
    torch.manual_seed(0)
    weights = folder / "enet_random.pth"
    torch.save({"state_dict": ENetSegmentor(weights=None).net.state_dict()}, weights)
    config = HeadConfig(in_channels=128, width=8, depth=1, dropout=0.0)
    head = OoDHead.from_config(config).eval()
    HeadFile(
        head_config=config,
        state_dict=head.state_dict(),
        segmentor="enet",
        segmentor_options={},
        feature_channels=128,
        threshold=0.0,
        threshold_rule="test",
        score_stats={"normal_p50": -1.0, "normal_p999": 1.0},
    ).save(folder / "head.pt")
    return {"weights": weights, "head": folder / "head.pt"}


@pytest.fixture
def tmp_model_args(tiny_model) -> list[str]:
    """CLI arguments for the tiny model: segmentor, weights and head."""
    return ["--segmentor", "enet", "--weights", str(tiny_model["weights"]),
            "--head", str(tiny_model["head"]), "--device", "cpu"]  # fmt: skip
