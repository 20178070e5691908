"""Where the repository and the ../shared data are."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("SLEEG_SHARED", REPO.parent / "shared")).resolve()
ROS_PROCS = Path(__file__).resolve().parent / "ros_procs"


def shared_path(*parts: str) -> Path:
    """A path under ../shared/data, or skip the test saying which file is missing."""
    path = SHARED.joinpath("data", *parts)
    if not path.exists():
        pytest.skip(f"shared data not available: {path} is absent (set SLEEG_SHARED)")
    return path
