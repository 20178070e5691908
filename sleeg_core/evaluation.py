"""Scoring labelled anomaly datasets: one forward per image, every requested score, metrics over
all valid pixels of each dataset (streaming, bounded memory), curves and overlays kept for plots.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from sleeg_core.datasets import AnomalySample
from sleeg_core.errors import SleegError
from sleeg_core.estimators import SMLStatistics
from sleeg_core.images import list_images, read_rgb, to_batch
from sleeg_core.inference import AnomalySegmenter
from sleeg_core.metrics import AnomalyMetrics, Curves, StreamingMetrics


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

    def as_dict(self) -> dict:
        return {
            "n_images": self.n_images,
            "n_valid_pixels": self.n_valid_pixels,
            "n_anomaly_pixels": self.n_anomaly_pixels,
            "scores": {
                name: {"ap": m.ap, "auroc": m.auroc, "fpr95": m.fpr95}
                for name, m in self.metrics.items()
            },
        }


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


def evenly_spaced(items: Sequence[Path], count: int) -> list[Path]:
    """At most `count` of `items`, evenly spaced from the first (all of them when fewer)."""
    if count >= len(items):
        return list(items)
    return [items[i * len(items) // count] for i in range(count)]


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
) -> DatasetResult:
    """Every score on every image of `dataset`, pooled over all valid pixels (void excluded).

    With `size`, the model runs at that size (frame fitted by `resize_mode`, as the node does)
    and the scores are mapped back to the label's resolution. The first `n_examples` images are
    kept with the map of 'sleeg' (else the first score)."""
    device = next(model.parameters()).device
    acc = {s: StreamingMetrics() for s in scores}
    n_valid = n_anomaly = 0
    examples = []
    shown = "sleeg" if "sleeg" in scores else scores[0]
    for i, sample in enumerate(tqdm(dataset, desc=name, unit="img", disable=not progress)):
        batch = to_batch(sample.image, device)
        pred = model(batch, scores=tuple(scores), size=size, resize_mode=resize_mode)
        label = torch.from_numpy(sample.label).to(device)
        valid = label != 255
        for s in scores:
            acc[s].update(pred.scores[s][0], label, valid)
        n_valid += int(valid.sum())
        n_anomaly += int((label == 1).sum())
        if i < n_examples:
            shown_map = pred.scores[shown][0].cpu().numpy()
            examples.append((sample.name, sample.image, sample.label, shown_map))
    return DatasetResult(
        name=name,
        n_images=len(dataset),
        n_valid_pixels=n_valid,
        n_anomaly_pixels=n_anomaly,
        metrics={s: a.compute() for s, a in acc.items()},
        curves={s: a.curves(max_points=1000) for s, a in acc.items()},
        examples=examples,
    )


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
            lines.append(f"| {s} | {ap} | {100 * m.auroc:.2f} | {fpr} |")
        lines.append("")
    return "\n".join(lines)
