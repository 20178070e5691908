"""Query the accuracy run history (docs/runs.csv): filter runs, print them, average them, plot them.

One row per evaluated run under protocol v2 (docs/accuracy.md): run, segmentor, recipe, seed,
steps, train_every, size, tta, score, the shipped head it became, and AP / FPR95 (%) per set.

    python benchmarks/runs.py --filter run=D21 --mean
    python benchmarks/runs.py --filter segmentor=dabnet --filter tta=scales --sort=-ro21_ap
    python benchmarks/runs.py --filter "run=E1*" --filter tta=scales --plot /tmp/enet.png
"""

from __future__ import annotations

import argparse
import csv
import sys
from fnmatch import fnmatchcase
from pathlib import Path

RUNS_CSV = Path(__file__).resolve().parent.parent / "docs" / "runs.csv"
SETS = ("road_anomaly", "ra21", "ro21", "fs_static")
SET_NAMES = dict(
    zip(SETS, ("Road Anomaly", "RoadAnomaly21", "RoadObstacle21", "FS Static"), strict=True)
)
METRICS = tuple(f"{s}_{m}" for s in SETS for m in ("ap", "fpr95"))
KEYS = ("run_id", "run", "segmentor", "recipe", "seed", "steps", "train_every", "size", "tta")
COLUMNS = (*KEYS, "score", "head", *METRICS)

Row = dict[str, str]


def load_runs(path: Path = RUNS_CSV) -> list[Row]:
    """The csv's rows as dicts of strings; checks the header and that every figure is a number."""
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise ValueError(f"{path}: columns {reader.fieldnames}, expected {list(COLUMNS)}")
        rows = list(reader)
    for row in rows:
        for key in METRICS:
            value(row, key)  # raises on a cell that is neither empty nor a number
    return rows


def value(row: Row, key: str) -> float | None:
    """A figure of a row as a float, None where the run has no such figure."""
    return float(row[key]) if row[key] else None


def parse_filter(text: str) -> tuple[str, str]:
    """'KEY=PATTERN' (a shell pattern: 'run=E1*', 'tta=scales') as (key, pattern)."""
    key, sep, pattern = text.partition("=")
    if not sep or key not in COLUMNS:
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=PATTERN, KEY one of {COLUMNS}")
    return key, pattern


def select(rows: list[Row], filters: list[tuple[str, str]]) -> list[Row]:
    """The rows matching every (key, pattern) filter."""
    return [r for r in rows if all(fnmatchcase(r[k], p) for k, p in filters)]


def sort_rows(rows: list[Row], key: str) -> list[Row]:
    """Sorted by a column ('-KEY': descending); figures numerically, runs without one last."""
    descending = key.startswith("-")
    key = key.lstrip("-")
    if key not in METRICS:
        return sorted(rows, key=lambda r: r[key], reverse=descending)
    known = [r for r in rows if r[key]]
    known.sort(key=lambda r: float(r[key]), reverse=descending)
    return known + [r for r in rows if not r[key]]


def mean_row(rows: list[Row]) -> Row:
    """The mean of each figure over the rows that have it, as a row named 'mean of N'."""
    out = {c: "" for c in COLUMNS}
    out["run_id"] = f"mean of {len(rows)}"
    for key in METRICS:
        values = [v for r in rows if (v := value(r, key)) is not None]
        out[key] = f"{sum(values) / len(values):.1f}" if values else ""
    return out


def table(rows: list[Row]) -> str:
    """A markdown table: run_id, seed, steps, size, tta, score and AP / FPR95 per set."""
    head = ["run_id", "seed", "steps", "size", "tta", "score", *SET_NAMES.values()]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        pairs = [f"{r[s + '_ap'] or '–'} / {r[s + '_fpr95'] or '–'}" for s in SETS]
        cells = [r["run_id"], r["seed"], r["steps"], r["size"], r["tta"], r["score"], *pairs]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(rows: list[Row], path: Path) -> None:
    """AP against FPR95 per set, one labelled point per row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 9))
    for ax, s in zip(axes.flat, SETS, strict=True):
        points = [(value(r, f"{s}_fpr95"), value(r, f"{s}_ap"), r["run_id"]) for r in rows]
        points = [p for p in points if p[0] is not None and p[1] is not None]
        ax.scatter([p[0] for p in points], [p[1] for p in points], s=14)
        for x, y, label in points:
            ax.annotate(label, (x, y), fontsize=6, xytext=(2, 2), textcoords="offset points")
        ax.set(title=SET_NAMES[s], xlabel="FPR95 % (lower is better)", ylabel="AP %")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--csv", type=Path, default=RUNS_CSV, help="default: docs/runs.csv")
    parser.add_argument(
        "--filter",
        type=parse_filter,
        action="append",
        default=[],
        metavar="KEY=PATTERN",
        help="keep rows whose KEY matches the shell pattern (repeatable: all must match)",
    )
    parser.add_argument("--sort", metavar="[-]KEY", help="sort by a column ('-KEY': descending)")
    parser.add_argument("--mean", action="store_true", help="add the mean of the selected rows")
    parser.add_argument("--plot", type=Path, metavar="PNG", help="plot AP against FPR95 per set")
    args = parser.parse_args(argv)
    if args.sort and args.sort.lstrip("-") not in COLUMNS:
        parser.error(f"--sort {args.sort}: not a column of {args.csv}")
    rows = select(load_runs(args.csv), args.filter)
    if not rows:
        print("no run matches", file=sys.stderr)
        return 1
    if args.sort:
        rows = sort_rows(rows, args.sort)
    print(table([*rows, mean_row(rows)] if args.mean else rows))
    if args.plot:
        plot(rows, args.plot)
        print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
