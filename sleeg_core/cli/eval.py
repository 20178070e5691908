"""`sleeg eval`: AP / AUROC / FPR95 of SLEEG and the baselines on labelled anomaly datasets."""

from __future__ import annotations

import argparse
import itertools
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

from sleeg_core.cli.args import add_model_args, add_size_args, parse_inference_size
from sleeg_core.common.errors import SleegError
from sleeg_core.data.datasets import open_dataset
from sleeg_core.data.labels import AnomalySample
from sleeg_core.eval.evaluation import (
    HEAD_SCORE,
    DatasetResult,
    MaskRule,
    evaluate_dataset,
    evenly_spaced,
    images_of,
    results_table,
    sml_statistics_from_images,
)
from sleeg_core.eval.obstacles import NODE_CLEANUP, MaskCleanup
from sleeg_core.eval.plots import plot_breakdown, plot_curves, plot_examples
from sleeg_core.model.estimators import HEAD_SCORES, score_names
from sleeg_core.model.inference import AnomalySegmenter, load_segmenter

DEFAULT_SCORES = "msp,maxlogit,entropy,energy,sleeg"
Dataset = Sequence[AnomalySample] | Iterable[AnomalySample]  # what open_dataset returns


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "eval",
        help="evaluate anomaly scores on labelled datasets",
        description="Pixel-level AP, AUROC and FPR95 (first threshold with TPR ≥ 0.95) over all "
        "valid pixels of each dataset, void excluded. Writes results.json, results.md, PR/ROC "
        "curves and example overlays. With --head, also the component-level (SegmentMeIfYouCan) "
        "and pixel figures of the mask the node would publish; --breakdown adds where the false "
        "positives are.",
    )
    add_model_args(parser)
    parser.add_argument(
        "--dataset",
        action="append",
        required=True,
        metavar="NAME=PATH",
        help="a labelled dataset folder (layout auto-detected; repeatable)",
    )
    parser.add_argument(
        "--scores", default=DEFAULT_SCORES, help=f"comma-separated, from: {','.join(score_names())}"
    )
    parser.add_argument("--label-map", help="raw label → 0/1/255, e.g. '0:0,2:1,*:255'")
    parser.add_argument(
        "--max-images",
        type=int,
        default=0,
        metavar="N",
        help="evaluate at most N images per dataset: evenly spaced over a folder, the first N "
        "of a bag (0: all)",
    )
    parser.add_argument(
        "--sml-images",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="unlabeled images for SML's per-class statistics (needed for sml)",
    )
    parser.add_argument(
        "--sml-max-images",
        type=int,
        default=0,
        metavar="N",
        help="use at most N of the SML images, evenly spaced (0: all)",
    )
    parser.add_argument(
        "--lam", type=float, help="λ of the 'sleeg' score (default: the head file's)"
    )
    add_size_args(parser)
    parser.add_argument("--examples", type=int, default=3, help="overlay rows per dataset")
    parser.add_argument(
        "--bootstrap",
        type=int,
        default=0,
        metavar="N",
        help="resample each dataset's images N times (e.g. 1000): 90%% intervals of AP and "
        "FPR95 per score, and the share of the same draws in which 'sleeg' beats each other "
        "score (0: off)",
    )
    add_mask_args(parser)
    parser.add_argument("--out", required=True, type=Path)
    parser.set_defaults(run=run)


def add_mask_args(parser: argparse.ArgumentParser) -> None:
    """The mask scored beside the scores (with --head), and the false-positive breakdown."""
    parser.add_argument(
        "--threshold",
        type=float,
        help="mask threshold on the 'sleeg' score (default: the head file's, as the node)",
    )
    parser.add_argument(
        "--mask-open-px",
        type=int,
        default=NODE_CLEANUP.open_px,
        help=f"as the node's mask_open_px: the mask's opening kernel (default "
        f"{NODE_CLEANUP.open_px})",
    )
    parser.add_argument(
        "--min-blob-area",
        type=int,
        default=NODE_CLEANUP.min_area,
        help=f"as the node's min_blob_area (default {NODE_CLEANUP.min_area})",
    )
    parser.add_argument(
        "--min-blob-area-near",
        type=float,
        default=NODE_CLEANUP.min_area_near,
        help=f"as the node's min_blob_area_near (default {NODE_CLEANUP.min_area_near:g})",
    )
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="false positives of 'sleeg' (else the first score) at its FPR95 threshold by the "
        "segmentor's predicted class and by row band (far / middle / near third): a table in "
        "results.md and <dataset>_fp_breakdown.png",
    )


def run(args: argparse.Namespace) -> int:
    scores = _checked_scores(args)
    if args.max_images < 0:
        raise SleegError(f"--max-images must be ≥ 0 (0: all), got {args.max_images}")
    datasets = [
        (n, _limited(d, args.max_images)) for n, d in _open_datasets(args.dataset, args.label_map)
    ]
    size = parse_inference_size(args.size)
    model, head_threshold = _load_model(args, scores, size)
    args.mask = _mask_rule(args, scores, head_threshold)
    args.out.mkdir(parents=True, exist_ok=True)
    results = [_evaluate(model, name, dataset, scores, size, args) for name, dataset in datasets]
    payload = {
        "segmentor": model.segmentor.info.name,
        "head": str(args.head) if args.head else None,
        "lam": model.lam if args.head else None,
        "tta": model.tta,
        "fpr95_rule": "first threshold with TPR >= 0.95",
        "datasets": {r.name: r.as_dict() for r in results},
    }
    (args.out / "results.json").write_text(json.dumps(payload, indent=2))
    table = results_table(results)
    (args.out / "results.md").write_text(table)
    print(table)
    return 0


def _checked_scores(args: argparse.Namespace) -> list[str]:
    """The names of --scores, checked with --bootstrap and --head."""
    scores = [s.strip() for s in args.scores.split(",") if s.strip()]
    if args.bootstrap < 0:
        raise SleegError(f"--bootstrap must be ≥ 0 resamples, got {args.bootstrap}")
    unknown = [s for s in scores if s not in score_names()]
    if unknown:
        raise SleegError(f"unknown scores {unknown}; choose from {', '.join(score_names())}")
    if any(s in HEAD_SCORES for s in scores) and not args.head:
        raise SleegError(f"scores {[s for s in scores if s in HEAD_SCORES]} need --head")
    return scores


def _open_datasets(items: list[str], label_map: str | None) -> list[tuple[str, Dataset]]:
    """(name, dataset) of each --dataset NAME=PATH."""
    datasets = []
    for item in items:
        name, sep, path = item.partition("=")
        if not sep:
            raise SleegError(f"--dataset must be NAME=PATH, got '{item}'")
        datasets.append((name, open_dataset(path, label_map)))
    return datasets


def _limited(dataset: Dataset, count: int) -> Dataset:
    """At most `count` samples of `dataset` (0: all): evenly spaced where it can be indexed
    (a folder), else the first `count` (a bag, read as a stream)."""
    if count == 0:
        return dataset
    if isinstance(dataset, Sequence):
        return evenly_spaced(dataset, count)
    return itertools.islice(dataset, count)


def _mask_rule(
    args: argparse.Namespace, scores: list[str], head_threshold: float
) -> MaskRule | None:
    """The mask scored: 'sleeg' at --threshold (else the head file's), cleaned as the node does
    with the clean-up flags; None without 'sleeg' or any threshold."""
    cleanup = MaskCleanup(args.mask_open_px, args.min_blob_area, args.min_blob_area_near)
    if cleanup.open_px < 0 or cleanup.min_area < 0 or not cleanup.min_area_near >= 0:
        raise SleegError(
            "--mask-open-px, --min-blob-area and --min-blob-area-near must be ≥ 0, got "
            f"{cleanup.open_px}, {cleanup.min_area}, {cleanup.min_area_near}"
        )
    threshold = head_threshold if args.threshold is None else args.threshold
    if args.threshold is not None and not math.isfinite(args.threshold):
        raise SleegError(f"--threshold must be a finite number, got {args.threshold}")
    if HEAD_SCORE not in scores or not math.isfinite(threshold):
        return None
    return MaskRule(threshold, cleanup)


def _load_model(
    args: argparse.Namespace, scores: list[str], size: tuple[int, int] | None
) -> tuple[AnomalySegmenter, float]:
    """The segmenter of --segmentor/--weights/--head with --lam, --tta and, for 'sml', the
    statistics of --sml-images; and the head file's threshold (NaN: none)."""
    model, head_file = load_segmenter(args.segmentor, args.weights, args.head, args.device)
    if args.lam is not None:
        model.lam = args.lam
    model.tta = args.tta
    if "sml" in scores:
        if not args.sml_images:
            raise SleegError(
                "score 'sml' needs --sml-images DIR (unlabeled in-distribution images)"
            )
        paths = images_of(args.sml_images)
        if args.sml_max_images > 0:
            paths = evenly_spaced(paths, args.sml_max_images)
        model.sml_stats = sml_statistics_from_images(model, paths, size)
    return model, head_file.threshold if head_file is not None else math.nan


def _evaluate(
    model: AnomalySegmenter,
    name: str,
    dataset: Dataset,
    scores: list[str],
    size: tuple[int, int] | None,
    args: argparse.Namespace,
) -> DatasetResult:
    """Evaluate one dataset and plot its curves and example overlays into --out."""
    result = evaluate_dataset(
        model,
        name,
        dataset,
        scores,
        size,
        args.examples,
        resize_mode=args.resize_mode,
        bootstrap=args.bootstrap,
        mask=args.mask,
        breakdown=args.breakdown,
    )
    plot_curves(result, args.out / f"{name}_curves.png")
    if result.breakdown is not None:
        plot_breakdown(result, args.out / f"{name}_fp_breakdown.png")
    if result.examples:
        shown = "sleeg" if "sleeg" in scores else scores[0]
        plot_examples(result, shown, args.out / f"{name}_examples.png")
    return result
