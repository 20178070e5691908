"""scripts/setup: idempotent, and loud about missing system tools."""

import os
import shutil
import subprocess

from helpers.paths import REPO


def test_second_run_skips_installs_and_changes_nothing():
    stamp = REPO / ".venv" / ".sleeg-setup-stamp"
    before = stamp.stat().st_mtime_ns
    out = subprocess.run(
        [str(REPO / "scripts" / "setup")], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert "Python packages up to date" in out.stdout
    assert stamp.stat().st_mtime_ns == before


def test_missing_build_tool_is_named_with_the_apt_packages(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("python3", "make", "g++", "bash", "env", "dirname", "cat", "sha256sum", "cut"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    env = {**os.environ, "PATH": str(bin_dir)}
    out = subprocess.run(
        ["bash", str(REPO / "scripts" / "setup")], capture_output=True, text=True, env=env
    )
    assert out.returncode == 1
    assert "missing build tools: cmake" in out.stderr
    assert "apt-get install cmake make g++" in out.stderr
