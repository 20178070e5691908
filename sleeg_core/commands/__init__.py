"""One module per `sleeg` command, each with `add_parser(subparsers)` and `run(args)`."""

from __future__ import annotations

import argparse

from sleeg_core.segmentors import segmentor_names


def add_model_args(parser: argparse.ArgumentParser) -> None:
    """--segmentor, --weights, --head and --device, the same for every command that runs a model."""
    parser.add_argument(
        "--segmentor",
        choices=segmentor_names(),
        help="default: the head file's, else the known weights' segmentor",
    )
    parser.add_argument(
        "--weights",
        required=True,
        help="segmentor checkpoint: a file, or a known name (sleeg weights list), fetched once",
    )
    parser.add_argument("--head", help="trained OoD head: a file, or a shipped head's name")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
