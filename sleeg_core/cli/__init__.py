"""The `sleeg` command line (`sleeg <command> --help`); `python -m sleeg_core.cli` runs it too."""

from sleeg_core.cli.app import main

__all__ = ["main"]
