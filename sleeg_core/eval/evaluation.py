"""Scoring labelled anomaly datasets: one forward per image, every requested score, metrics over
all valid pixels of each dataset (streaming, bounded memory), curves and overlays kept for plots.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from tqdm import tqdm

from sleeg_core.common.errors import SleegError
from sleeg_core.data.images import list_images, read_rgb, to_batch
from sleeg_core.data.labels import AnomalySample
from sleeg_core.eval.bootstrap import ImageBootstrap, image_draws, interval
from sleeg_core.eval.breakdown import Breakdown, FalsePositiveBreakdown, breakdown_table
from sleeg_core.eval.components import ComponentMetrics, MaskMetrics, percent
from sleeg_core.eval.metrics import AnomalyMetrics, Curves, StreamingMetrics
from sleeg_core.eval.obstacles import NODE_CLEANUP, MaskCleanup
from sleeg_core.model.estimators import SMLStatistics
from sleeg_core.model.inference import AnomalySegmenter, Prediction

T = TypeVar("T")
HEAD_SCORE = "sleeg"  # the score the others are compared with in the bootstrap


@dataclass
class DatasetResult:
    name: str
    n_images: int
    n_valid_pixels: int
    n_anomaly_pixels: int
    metrics: dict[str, AnomalyMetrics]
    curves: dict[str, Curves]
    examples: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)
    # (name, image, label, score map) of the first few images
    intervals: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)
    # score → {"ap", "fpr95"}: 90 % bootstrap interval over the images (when asked for)
    paired: dict[str, dict[str, float]] = field(default_factory=dict)
    # other score → share of the same draws in which 'sleeg' is better {"ap", "fpr95"}
    n_draws: int = 0
    breakdown: Breakdown | None = None  # false positives of `shown` at its FPR95 threshold
    mask: MaskMetrics | None = None  # the head's mask at its threshold, cleaned as the node does
    mask_rule: dict[str, float] = field(default_factory=dict)  # threshold and clean-up

    def as_dict(self) -> dict:
        out = {
            "n_images": self.n_images,
            "n_valid_pixels": self.n_valid_pixels,
            "n_anomaly_pixels": self.n_anomaly_pixels,
            "scores": {
                name: {"ap": m.ap, "auroc": m.auroc, "fpr95": m.fpr95}
                for name, m in self.metrics.items()
            },
        }
        if self.n_draws:
            out["bootstrap"] = {"draws": self.n_draws, "level": 0.9, "paired": self.paired}
            for name, bounds in self.intervals.items():
                out["scores"][name]["ci90"] = {k: list(v) for k, v in bounds.items()}
        if self.mask is not None:
            out["mask"] = {**self.mask_rule, **self.mask.as_dict()}
        if self.breakdown is not None:
            out["fp_breakdown"] = self.breakdown.as_dict()
        return out


@torch.no_grad()
def sml_statistics_from_images(
    model: AnomalySegmenter, paths: Sequence[Path], size: tuple[int, int] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """SML per-class max-logit statistics from unlabeled images (labels never read)."""
    if not paths:
        raise SleegError("SML statistics need at least one unlabeled image")
    stats = SMLStatistics(model.segmentor.info.num_classes)
    device = next(model.parameters()).device
    for path in tqdm(paths, desc="SML statistics", unit="img", leave=False):
        pred = model(to_batch(read_rgb(path), device), scores=(), size=size, keep_logits=True)
        stats.update(pred.logits)
    return stats.compute()


def images_of(folders: Sequence[Path]) -> list[Path]:
    return [p for folder in folders for p in list_images(folder)]


def evenly_spaced(items: Sequence[T], count: int) -> list[T]:
    """At most `count` of `items`, evenly spaced from the first (all of them when fewer)."""
    if count >= len(items):
        return list(items)
    return [items[i * len(items) // count] for i in range(count)]


@dataclass(frozen=True)
class MaskRule:
    """The mask `evaluate_dataset` scores: the head's score ≥ `threshold`, then `cleanup`."""

    threshold: float
    cleanup: MaskCleanup = NODE_CLEANUP

    def as_dict(self) -> dict[str, float]:
        c = self.cleanup
        return {
            "threshold": self.threshold,
            "mask_open_px": c.open_px,
            "min_blob_area": c.min_area,
            "min_blob_area_near": c.min_area_near,
        }


class _Extras:
    """The per-image figures beyond the scores' metrics: the mask's components and the false
    positives' breakdown."""

    def __init__(self, shown: str, mask: MaskRule | None, breakdown: bool) -> None:
        self.shown = shown
        self.mask = mask
        self.components = ComponentMetrics() if mask is not None else None
        self.breakdown = FalsePositiveBreakdown() if breakdown else None

    def update(self, pred: Prediction, label: np.ndarray) -> None:
        if self.components is not None:
            score = pred.scores[HEAD_SCORE][0].cpu().numpy()
            self.components.update(self.mask.cleanup.apply(score, self.mask.threshold)[0], label)
        if self.breakdown is not None:
            self.breakdown.update(pred.scores[self.shown][0].cpu(), label, pred.train_ids[0])

    def finish(self, result: DatasetResult, acc: StreamingMetrics) -> None:
        if self.components is not None and self.components.images:
            result.mask = self.components.compute()
            result.mask_rule = self.mask.as_dict()
        if self.breakdown is not None and result.n_anomaly_pixels:
            result.breakdown = self.breakdown.at(acc.threshold_at_tpr())


@torch.no_grad()
def evaluate_dataset(
    model: AnomalySegmenter,
    name: str,
    dataset: Sequence[AnomalySample] | Iterable[AnomalySample],
    scores: Sequence[str],
    size: tuple[int, int] | None = None,
    n_examples: int = 3,
    progress: bool = True,
    resize_mode: str = "stretch",
    bootstrap: int = 0,
    mask: MaskRule | None = None,
    breakdown: bool = False,
) -> DatasetResult:
    """Every score on every image of `dataset`, pooled over all valid pixels (void excluded).

    With `size`, the model runs at that size (frame fitted by `resize_mode`, as the node does)
    and the scores are mapped back to the label's resolution. The first `n_examples` images are
    kept with the map of 'sleeg' (else the first score). `bootstrap` > 0: that many resamples of
    the images (the same for every score) give each score's 90 % intervals of AP and FPR95 and,
    against every other score, the share of draws in which 'sleeg' is better. `mask`: the
    component-level and pixel figures of the mask the node would publish ('sleeg' needed).
    `breakdown`: the false positives of 'sleeg' (else the first score) at its FPR95 threshold by
    predicted class and row band (the segmentation is computed only then)."""
    if mask is not None and HEAD_SCORE not in scores:
        raise SleegError(f"the mask metrics need the '{HEAD_SCORE}' score")
    device = next(model.parameters()).device
    acc = {s: StreamingMetrics() for s in scores}
    boot = {s: ImageBootstrap() for s in scores} if bootstrap > 0 else {}
    n_images = n_valid = n_anomaly = 0
    examples = []
    shown = HEAD_SCORE if HEAD_SCORE in scores else scores[0]
    extras = _Extras(shown, mask, breakdown)
    for i, sample in enumerate(tqdm(dataset, desc=name, unit="img", disable=not progress)):
        batch = to_batch(sample.image, device)
        pred = model(
            batch, scores=tuple(scores), size=size, resize_mode=resize_mode, train_ids=breakdown
        )
        label = torch.from_numpy(sample.label).to(device)
        valid = label != 255
        for s in scores:
            acc[s].update(pred.scores[s][0], label, valid)
            if boot:
                boot[s].update(pred.scores[s][0], label, valid)
        extras.update(pred, sample.label)
        n_images += 1
        n_valid += int(valid.sum())
        n_anomaly += int((label == 1).sum())
        if i < n_examples:
            shown_map = pred.scores[shown][0].cpu().numpy()
            examples.append((sample.name, sample.image, sample.label, shown_map))
    result = DatasetResult(
        name=name,
        n_images=n_images,
        n_valid_pixels=n_valid,
        n_anomaly_pixels=n_anomaly,
        metrics={s: a.compute() for s, a in acc.items()},
        curves={s: a.curves(max_points=1000) for s, a in acc.items()},
        examples=examples,
    )
    extras.finish(result, acc[shown])
    if boot:
        _add_bootstrap(result, boot, bootstrap)
    return result


def _add_bootstrap(result: DatasetResult, boot: dict[str, ImageBootstrap], n_draws: int) -> None:
    """Intervals of every score and the head's paired shares, from one set of image draws."""
    draws = image_draws(result.n_images, n_draws)
    values = {s: b.resampled(draws) for s, b in boot.items()}
    result.n_draws = n_draws
    result.intervals = {
        s: {"ap": interval(ap), "fpr95": interval(fpr)} for s, (ap, fpr) in values.items()
    }
    if HEAD_SCORE in values:
        head_ap, head_fpr = values[HEAD_SCORE]
        for s, (ap, fpr) in values.items():
            if s != HEAD_SCORE:
                result.paired[s] = {
                    "ap": float(np.nanmean(np.where(np.isnan(ap), np.nan, head_ap > ap))),
                    "fpr95": float(np.nanmean(np.where(np.isnan(fpr), np.nan, head_fpr < fpr))),
                }


def results_table(results: Sequence[DatasetResult]) -> str:
    """The markdown table a paper would print: AP ↑, AUROC ↑, FPR95 ↓ in percent."""
    lines = []
    for r in results:
        lines += [
            f"### {r.name} ({r.n_images} images, {r.n_valid_pixels:,} valid pixels, "
            f"{r.n_anomaly_pixels / max(r.n_valid_pixels, 1):.2%} anomalous)",
            "",
            "| score | AP ↑ | AUROC ↑ | FPR95 ↓ |",
            "|---|---:|---:|---:|",
        ]
        best_ap = max(m.ap for m in r.metrics.values())
        best_fpr = min(m.fpr95 for m in r.metrics.values())
        for s, m in r.metrics.items():
            ap = f"**{100 * m.ap:.2f}**" if m.ap == best_ap else f"{100 * m.ap:.2f}"
            fpr = f"**{100 * m.fpr95:.2f}**" if m.fpr95 == best_fpr else f"{100 * m.fpr95:.2f}"
            if s in r.intervals:
                ap += " ({:.1f}–{:.1f})".format(*(100 * v for v in r.intervals[s]["ap"]))
                fpr += " ({:.1f}–{:.1f})".format(*(100 * v for v in r.intervals[s]["fpr95"]))
            lines.append(f"| {s} | {ap} | {100 * m.auroc:.2f} | {fpr} |")
        if r.n_draws:
            lines += [
                "",
                f"In brackets: 90 % interval over {r.n_draws} resamples of the images.",
            ]
            lines += [
                f"- {HEAD_SCORE} better than {s} in {100 * p['ap']:.0f} % of the draws in AP, "
                f"{100 * p['fpr95']:.0f} % in FPR95"
                for s, p in r.paired.items()
            ]
        lines.append("")
        if r.mask is not None:
            lines += [mask_table(r), ""]
        if r.breakdown is not None:
            lines.append(breakdown_table(r.name, r.breakdown))
    return "\n".join(lines)


def mask_table(r: DatasetResult) -> str:
    """Markdown: the component-level and pixel figures of the mask the node would publish."""
    m, rule = r.mask, r.mask_rule
    return "\n".join(
        [
            f"Mask (score ≥ {rule['threshold']:.4g}, opening {rule['mask_open_px']} px, "
            f"components ≥ {rule['min_blob_area']} px and ≥ {rule['min_blob_area_near']:g}·"
            "(lowest row + 1)²), in %:",
            "",
            "| sIoU ↑ | PPV ↑ | mean F1 ↑ | pixel precision ↑ | pixel recall ↑ "
            "| normal pixels flagged ↓ | objects | predicted components |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
            f"| {percent(m.siou)} | {percent(m.ppv)} | {percent(m.mean_f1)} "
            f"| {percent(m.precision)} | {percent(m.recall)} | {percent(m.normal_flagged)} "
            f"| {m.gt_components} | {m.predicted_components} |",
        ]
    )
