"""The `sleeg` command line: `sleeg <command> --help` for each command.

Every command is a module with `add_parser(subparsers)` and `run(args)`: `sleeg_core.commands.*`,
and `sleeg_ros.bag_command` for `sleeg bag`, which needs the ROS extras (rosbags, rclpy); without
them that command is still listed and says what to install. A SleegError ends a command with its
one-line message and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from sleeg_core.errors import SleegError

# command name → module that defines it
COMMANDS: dict[str, str] = {
    "weights": "sleeg_core.commands.weights",
    "infer": "sleeg_core.commands.infer",
    "train": "sleeg_core.commands.train",
    "eval": "sleeg_core.commands.eval",
    "export": "sleeg_core.commands.export",
    "bag": "sleeg_ros.bag_command",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sleeg",
        description="SLEEG anomaly segmentation for road scenes: a frozen Cityscapes segmentor "
        "with a self-supervised OoD head.",
    )
    sub = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    for name, module in COMMANDS.items():
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


if __name__ == "__main__":
    sys.exit(main())
