"""One module per `sleeg` command, each with `add_parser(subparsers)` and `run(args)`."""

from __future__ import annotations

import argparse

from sleeg_core.data.geometry import RESIZE_MODES
from sleeg_core.deploy.onnx_export import parse_size
from sleeg_core.model.tta import NODE_TTA, TTA_MODES
from sleeg_core.segmentors import segmentor_names

NODE_SIZE = "512x1024"  # the node's default inference_height × inference_width


def add_model_args(parser: argparse.ArgumentParser) -> None:
    """--segmentor, --weights, --head and --device, the same for every command that runs a model."""
    parser.add_argument(
        "--segmentor",
        choices=segmentor_names(),
        help="default: the head file's, else the known weights' segmentor",
    )
    parser.add_argument(
        "--weights",
        help="segmentor checkpoint: a file, or a known name (sleeg weights list), fetched once; "
        "required but with an ensemble --head (default: its first member's)",
    )
    parser.add_argument(
        "--head", help="trained OoD head or ensemble: a file, or a shipped head's name"
    )
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")


def add_size_args(parser: argparse.ArgumentParser) -> None:
    """--size, --resize-mode and --tta: how the network runs, by default as the node runs it."""
    parser.add_argument(
        "--size",
        default=NODE_SIZE,
        help=f"inference size HxW, or 'native' for each image's own size (default {NODE_SIZE}: "
        "the node's default inference size; outputs are always at the image's size)",
    )
    parser.add_argument(
        "--resize-mode",
        default="pad",
        choices=RESIZE_MODES,
        help="how an image is fitted to --size (default pad: the node's default; pad and crop "
        "keep the aspect)",
    )
    parser.add_argument(
        "--tta",
        default=NODE_TTA,
        choices=TTA_MODES,
        help=f"test-time averaging of the scores (default {NODE_TTA}: the node's default): "
        "scales averages them over the input at 1, 0.75 and 0.5 of --size (1.81x the compute), "
        "flip with the mirrored image's (2x), none runs once",
    )


def parse_inference_size(text: str) -> tuple[int, int] | None:
    """--size: 'native' → None, else HxW as `sleeg_core.deploy.onnx_export.parse_size` reads it."""
    return None if text.lower() == "native" else parse_size(text)
