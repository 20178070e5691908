"""Plot the loss curves of a training run (its metrics.csv) to one PNG.

Panels: total loss, L_a (TAE) and L_o (TORE) per step with a moving average, and the share of
pixels labelled anomaly / ignored after the refinement.

    python benchmarks/train_curve.py RUN/metrics.csv --out docs/train_curve.png
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

PANELS = (
    ("loss", "total loss"),
    ("tae", "L_a (TAE cross-entropy)"),
    ("tore", "L_o (TORE hinge)"),
    ("anomaly_fraction", "pixel share after refinement"),
)


def read_metrics(path: Path) -> dict[str, np.ndarray]:
    """metrics.csv as column → float array."""
    with path.open() as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise SystemExit(f"{path} has no rows")
    return {key: np.array([float(r[key]) for r in rows]) for key in rows[0]}


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average (shorter at the start), same length as `values`."""
    cumsum = np.cumsum(np.insert(values, 0, 0.0))
    index = np.arange(1, len(values) + 1)
    start = np.maximum(index - window, 0)
    return (cumsum[index] - cumsum[start]) / (index - start)


def plot(metrics: dict[str, np.ndarray], out: Path, window: int, title: str) -> None:
    step = metrics["step"]
    panels = [(k, label) for k, label in PANELS if not np.isnan(metrics[k]).all()]  # TORE at β = 0
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.2))
    for ax, (key, label) in zip(axes, panels, strict=True):
        ax.plot(step, metrics[key], color="0.75", lw=0.6)
        ax.plot(step, smooth(metrics[key], window), color="C0", lw=1.5, label=key)
        if key == "anomaly_fraction":
            ax.plot(step, smooth(metrics["ignore_fraction"], window), color="C1", label="ignored")
            ax.legend(fontsize=8)
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("metrics", type=Path, help="metrics.csv of a training run")
    parser.add_argument("--out", required=True, type=Path, help="PNG to write")
    parser.add_argument("--window", type=int, default=25, help="moving-average window (steps)")
    parser.add_argument("--title", default="", help="figure title (default: the run folder)")
    args = parser.parse_args()
    plot(read_metrics(args.metrics), args.out, args.window, args.title or args.metrics.parent.name)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
