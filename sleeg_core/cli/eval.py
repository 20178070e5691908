"""`sleeg eval`: AP / AUROC / FPR95 of SLEEG and the baselines on labelled anomaly datasets."""

from __future__ import annotations

import argparse
import itertools
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from sleeg_core.cli.args import add_model_args, add_size_args, parse_inference_size
from sleeg_core.common.errors import SleegError
from sleeg_core.data.datasets import open_dataset
from sleeg_core.data.labels import AnomalySample
from sleeg_core.eval.evaluation import (
    DatasetResult,
    evaluate_dataset,
    evenly_spaced,
    images_of,
    results_table,
    sml_statistics_from_images,
)
from sleeg_core.eval.plots import plot_curves, plot_examples
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
        "curves and example overlays.",
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
    parser.add_argument("--out", required=True, type=Path)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    scores = _checked_scores(args)
    if args.max_images < 0:
        raise SleegError(f"--max-images must be ≥ 0 (0: all), got {args.max_images}")
    datasets = [
        (n, _limited(d, args.max_images)) for n, d in _open_datasets(args.dataset, args.label_map)
    ]
    size = parse_inference_size(args.size)
    model = _load_model(args, scores, size)
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


def _load_model(
    args: argparse.Namespace, scores: list[str], size: tuple[int, int] | None
) -> AnomalySegmenter:
    """The segmenter of --segmentor/--weights/--head with --lam, --tta and, for 'sml', the
    statistics of --sml-images."""
    model, _ = load_segmenter(args.segmentor, args.weights, args.head, args.device)
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
    return model


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
    )
    plot_curves(result, args.out / f"{name}_curves.png")
    if result.examples:
        shown = "sleeg" if "sleeg" in scores else scores[0]
        plot_examples(result, shown, args.out / f"{name}_examples.png")
    return result
