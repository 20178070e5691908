"""`sleeg export`: segmentor + head + score + train ids as one ONNX graph (docs/export.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from sleeg_core.cli.args import add_model_args
from sleeg_core.deploy.onnx_export import LAYOUTS, MIN_OPSET, export_onnx, parse_size
from sleeg_core.model.estimators import score_names
from sleeg_core.model.inference import load_segmenter


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "export",
        help="export segmentor (+ head) with its anomaly score as one ONNX graph",
        description="Writes an ONNX graph for a fixed input size: input `images` (uint8 RGB), "
        "outputs `score` (float32 B×H×W, higher = more anomalous), `train_ids` (uint8 B×H×W) "
        "and, for a head file's 'sleeg' score with a calibrated threshold, `mask` (uint8, 1 where "
        "score ≥ threshold). The head file's threshold and score statistics go into the ONNX "
        "metadata. Build a TensorRT engine from it with trtexec (docs/export.md).",
    )
    add_model_args(parser)
    parser.add_argument("--out", required=True, type=Path, help="the .onnx file to write")
    parser.add_argument(
        "--size", default="512x1024", help="input height x width in pixels (default: 512x1024)"
    )
    parser.add_argument(
        "--score",
        choices=score_names(),
        help="the score output (default: sleeg with --head, else entropy)",
    )
    parser.add_argument("--batch", type=int, default=1, help="images per run (default: 1)")
    parser.add_argument(
        "--layout",
        choices=LAYOUTS,
        default="nchw",
        help="input layout: nchw = B×3×H×W (default), nhwc = B×H×W×3 (a camera frame as is)",
    )
    parser.add_argument(
        "--opset", type=int, default=MIN_OPSET, help=f"ONNX opset (≥ {MIN_OPSET}, the default)"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    size = parse_size(args.size)  # a bad size fails before the model is loaded
    model, head_file = load_segmenter(args.segmentor, args.weights, args.head, args.device)
    provenance = {"weights": Path(args.weights).name}
    if args.head:
        provenance["head"] = Path(args.head).name
    path = export_onnx(
        model,
        head_file,
        args.out,
        size,
        score=args.score,
        batch=args.batch,
        layout=args.layout,
        opset=args.opset,
        provenance=provenance,
    )
    print(f"wrote {path} ({model.segmentor.info.name}, {size[0]}x{size[1]}, {args.layout})")
    return 0
