"""PR/ROC curves and input | score | ground-truth panels, as PNG files (matplotlib, Agg)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from sleeg_core.eval.breakdown import BANDS
from sleeg_core.eval.evaluation import DatasetResult
from sleeg_core.eval.visualize import heatmap, score_range


def plot_curves(result: DatasetResult, path: Path) -> Path:
    """PR and ROC curves of every score of one dataset, side by side."""
    fig, (pr, roc) = plt.subplots(1, 2, figsize=(11, 4.6))
    for name, c in result.curves.items():
        m = result.metrics[name]
        pr.plot(c.recall, c.precision, label=f"{name} (AP {100 * m.ap:.1f})")
        roc.plot(np.r_[0, c.fpr], np.r_[0, c.tpr], label=f"{name} (FPR95 {100 * m.fpr95:.1f})")
    base = result.n_anomaly_pixels / max(result.n_valid_pixels, 1)
    pr.axhline(base, color="grey", lw=0.8, ls="--", label=f"chance ({100 * base:.1f})")
    roc.axhline(0.95, color="grey", lw=0.8, ls=":")
    pr.set(xlabel="recall", ylabel="precision", title=f"{result.name}: precision-recall")
    roc.set(xlabel="false-positive rate", ylabel="true-positive rate", title=f"{result.name}: ROC")
    for ax in (pr, roc):
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.01)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_examples(result: DatasetResult, score_name: str, path: Path) -> Path:
    """Rows of input | score heat map | ground truth (white anomaly, grey void)."""
    rows = len(result.examples)
    fig, axes = plt.subplots(rows, 3, figsize=(13, 2.6 * rows), squeeze=False)
    for row, (name, image, label, score) in zip(axes, result.examples, strict=True):
        lo, hi = score_range(score)
        gt = np.where(label == 1, 255, np.where(label == 255, 110, 0)).astype(np.uint8)
        for ax, picture, title in zip(
            row,
            (image, heatmap(score, lo, hi), gt),
            (name, score_name, "ground truth"),
            strict=True,
        ):
            ax.imshow(picture, cmap="gray" if picture.ndim == 2 else None, vmin=0, vmax=255)
            ax.set_title(title, fontsize=9)
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


@dataclass
class LatencySeries:
    """One camera's frames over a replay (times in s since the first frame sent)."""

    sent_s: np.ndarray  # frames with all outputs: send time
    latency_ms: np.ndarray  # and latency
    lost_s: np.ndarray  # frames without outputs: send time
    reference_ms: float | None = None  # the node's own median latency


def plot_latency(series: dict[str, LatencySeries], path: Path) -> Path:
    """End-to-end latency of each frame over the replay, a line per camera (key "": a single
    unnamed one); frames without outputs as ticks at 0, the node's own median dashed. A single
    camera's ticks are red, its median grey; several cameras' in their line's colour."""
    fig, ax = plt.subplots(figsize=(10, 4))
    for i, (name, s) in enumerate(series.items()):
        who = f"{name}: " if name else ""
        colour = f"C{i}" if len(series) > 1 else None
        ax.plot(
            s.sent_s,
            s.latency_ms,
            ".-",
            lw=0.8,
            ms=4,
            color=colour or "C0",
            label=f"{who}frame latency (send → last output)",
        )
        if s.lost_s.size:
            ax.plot(
                s.lost_s,
                np.zeros_like(s.lost_s),
                "|",
                color=colour or "red",
                ms=12,
                label=f"{who}no output",
            )
        if s.reference_ms is not None and np.isfinite(s.reference_ms):
            ax.axhline(
                s.reference_ms,
                color=colour or "grey",
                ls="--",
                lw=0.8,
                label=f"{who}node's own median",
            )
    ax.set(xlabel="send time (s since the first frame)", ylabel="latency (ms)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_contact_sheet(tiles: list[tuple[str, np.ndarray]], path: Path, columns: int = 3) -> Path:
    """A grid of titled RGB images (e.g. overlays of a few frames)."""
    rows = max(1, -(-len(tiles) // columns))
    h, w = tiles[0][1].shape[:2] if tiles else (1, 1)
    fig, axes = plt.subplots(
        rows, columns, figsize=(4.2 * columns, 4.2 * rows * h / w + 0.4), squeeze=False
    )
    for ax in axes.flat:
        ax.axis("off")
    for ax, (title, image) in zip(axes.flat, tiles, strict=False):
        ax.imshow(image)
        ax.set_title(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_breakdown(result: DatasetResult, path: Path) -> Path:
    """Bar charts of the false positives at the FPR95 threshold: each predicted class's share of
    them and of its own normal pixels flagged, and the same for the three row bands."""
    b = result.breakdown
    share, rate = 100 * b.fp_share(), 100 * np.nan_to_num(b.class_rate())
    order = [i for i in np.argsort(-share, kind="stable") if b.normal[i].sum() > 0]
    names = [b.classes[i] for i in order]
    fig, (by_class, by_band) = plt.subplots(
        1, 2, figsize=(14, 4.4), gridspec_kw={"width_ratios": [3, 1]}
    )
    x = np.arange(len(order))
    by_class.bar(x - 0.2, share[order], 0.4, label="share of all false positives")
    by_class.bar(x + 0.2, rate[order], 0.4, label="share of the class's normal pixels flagged")
    by_class.set_xticks(x, names, rotation=60, ha="right", fontsize=8)
    by_class.set(ylabel="%", title=f"{result.name}: false positives by predicted class")
    xb = np.arange(len(BANDS))
    by_band.bar(xb - 0.2, 100 * b.band_share(), 0.4)
    by_band.bar(xb + 0.2, 100 * np.nan_to_num(b.band_rate()), 0.4)
    by_band.set_xticks(xb, [f"{n}\n({p})" for n, p in zip(BANDS, THIRDS, strict=True)], fontsize=8)
    by_band.set(title="by image rows")
    for ax in (by_class, by_band):
        ax.grid(axis="y", alpha=0.3)
    by_class.legend(fontsize=8)
    fig.suptitle(f"threshold {b.threshold:.4g}: TPR 95 % on this set", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


THIRDS = ("top third", "middle third", "bottom third")
