"""sleeg_core imports and works in an interpreter where no ROS package can be imported, and
never imports sleeg_ros (the dependency goes one way: sleeg_ros → sleeg_core)."""

import ast
import subprocess
import sys

import pytest
from helpers.paths import REPO

ROS = ("rclpy", "sensor_msgs", "std_msgs", "sleeg_ros", "rosidl_runtime_py", "builtin_interfaces")

# Make every import of the given top-level packages fail, then import all of sleeg_core; print
# each module that failed (`name: error type: message`), then 'ok'.
IMPORT_ALL = """
import importlib, importlib.abc, pkgutil, sys
BLOCKED = set(sys.argv[1].split(','))
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in BLOCKED:
            raise ImportError(f'blocked import: {name}', name=name)
sys.meta_path.insert(0, Block())
import sleeg_core
for mod in pkgutil.walk_packages(sleeg_core.__path__, 'sleeg_core.'):
    if mod.name.endswith('.__main__'):  # runs the CLI when imported
        continue
    try:
        importlib.import_module(mod.name)
    except ImportError as err:
        print(f'{mod.name}: {type(err).__name__}: {err}')
print('ok')
"""


def import_all(blocked: tuple[str, ...]) -> list[str]:
    """The sleeg_core modules (with their error) that fail to import with `blocked` unimportable."""
    out = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL, ",".join(blocked)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[-1] == "ok", out.stdout
    return lines[:-1]


def test_sleeg_core_imports_without_ros_and_sleeg_ros():
    pytest.importorskip("rosbags", reason="rosbags not installed: run scripts/setup")
    assert import_all(ROS) == []  # sleeg_core.data.bags included: rosbags is enough


def test_without_rosbags_only_the_bags_module_fails_saying_what_to_install():
    failed = import_all((*ROS, "rosbags"))
    assert len(failed) == 1, failed
    assert failed[0].startswith("sleeg_core.data.bags: MissingPackageError: ")
    assert "needs the 'rosbags' package" in failed[0] and "pip install rosbags" in failed[0]


def test_no_sleeg_core_module_imports_sleeg_ros_or_rclpy():
    """Also imports inside functions and importlib calls with a literal name (the CLI's table
    of command modules may still name sleeg_ros.bag.command)."""
    offending = []
    for path in sorted((REPO / "sleeg_core").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif (
                isinstance(node, ast.Call)
                and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                names = [str(node.args[0].value)]
            else:
                continue
            bad = [n for n in names if n.split(".")[0] in ("sleeg_ros", "rclpy")]
            offending += [f"{path.relative_to(REPO)}:{node.lineno}: {n}" for n in bad]
    assert offending == []
