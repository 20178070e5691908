"""The `sleeg` command line: `sleeg <command> --help` for each command.

Every command is a module with `add_parser(subparsers)` and `run(args)`: `sleeg_core.cli.args.*`,
and `sleeg_ros.bag.command` for `sleeg bag`, which needs the ROS extras (rosbags, rclpy); without
them that command is still listed and says what to install. A SleegError ends a command with its
one-line message and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from importlib.metadata import entry_points

from sleeg_core.common.errors import SleegError

# core command name → module that defines it
CORE_COMMANDS: dict[str, str] = {
    "weights": "sleeg_core.cli.weights",
    "infer": "sleeg_core.cli.infer",
    "train": "sleeg_core.cli.train",
    "eval": "sleeg_core.cli.eval",
    "export": "sleeg_core.cli.export",
}
ENTRY_POINT_GROUP = "sleeg.commands"


def commands() -> dict[str, str]:
    """Command name → module: the core commands, then those installed packages register."""
    found = dict(CORE_COMMANDS)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep.value)
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sleeg",
        description="SLEEG anomaly segmentation for road scenes: a frozen Cityscapes segmentor "
        "with a self-supervised OoD head.",
    )
    sub = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    for name, module in commands().items():
        try:
            importlib.import_module(module).add_parser(sub)
        except ImportError as err:
            missing = sub.add_parser(name, help=f"(unavailable: {err.name} is not installed)")
            missing.set_defaults(run=_unavailable(name, str(err.name)))
    return parser


def _unavailable(name: str, package: str):
    def run(_args: argparse.Namespace) -> int:
        raise SleegError(
            f"'sleeg {name}' needs {package}: run scripts/setup, or pip install '.[ros]'"
        )

    return run


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except SleegError as err:
        print(f"sleeg {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sleeg {args.command}: interrupted", file=sys.stderr)
        return 130
