"""Speed and peak memory of the anomaly metrics: exact, streaming and sklearn on N pixels.

Each method runs in its own subprocess on the same seeded float32 scores (normal N(0, 1),
anomalies N(1.5, 1)); memory is the peak RSS above the RSS once the input is in memory
(`resource.getrusage` high-water mark) after a warm-up on a tiny input (imports, lazily loaded
code); time is the best of `--repeat` runs. A last row streams 100 generated 2048×1024 images
(peak RSS of the whole process). Prints a table and writes JSON.

    python benchmarks/metrics_speed.py --pixels 20000000 --out /tmp/metrics_speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

IMAGE_PIXELS = 2048 * 1024
METHODS = ("sklearn", "exact", "streaming")


def make_data(n: int, rate: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded scores and labels, generated in chunks so generation adds no RSS peak."""
    rng = np.random.default_rng(seed)
    scores = np.empty(n, np.float32)
    labels = np.empty(n, np.uint8)
    for start in range(0, n, 1 << 20):
        part = slice(start, min(start + (1 << 20), n))
        size = part.stop - part.start
        labels[part] = rng.random(size, dtype=np.float32) < rate
        scores[part] = rng.standard_normal(size, dtype=np.float32) + 1.5 * labels[part]
    return scores, labels


def rss_mib() -> float:
    """Current resident set size."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run_method(method: str, scores: np.ndarray, labels: np.ndarray) -> dict[str, float | str]:
    """One evaluation of all three metrics (AP, AUROC, FPR95 first_ge)."""
    if method == "sklearn":
        from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

        fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
        return {
            "ap": float(average_precision_score(labels, scores)),
            "auroc": float(roc_auc_score(labels, scores)),
            "fpr95": float(fpr[np.argmax(tpr >= 0.95)]),
        }
    from sleeg_core.eval.metrics import StreamingMetrics, exact_metrics

    if method == "exact":
        m = exact_metrics(scores, labels)
    else:
        acc = StreamingMetrics()
        for start in range(0, scores.size, IMAGE_PIXELS):  # one update per 2048×1024 "image"
            acc.update(scores[start : start + IMAGE_PIXELS], labels[start : start + IMAGE_PIXELS])
        m = acc.compute()
    return m.as_dict()


def worker(args: argparse.Namespace) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    if args.worker == "dataset":
        from sleeg_core.eval.metrics import StreamingMetrics

        acc, start = StreamingMetrics(), time.perf_counter()
        for i in range(args.images):
            scores, labels = make_data(IMAGE_PIXELS, args.anomaly_rate, args.seed + i)
            acc.update(torch.from_numpy(scores).view(1024, 2048), labels.reshape(1024, 2048))
        metrics = acc.compute().as_dict()
        seconds = time.perf_counter() - start
        pixels = args.images * IMAGE_PIXELS
        return {
            "pixels": pixels,
            "seconds": seconds,
            "pixels_per_s": pixels / seconds,
            "peak_mib": peak_rss_mib(),
            "metrics": metrics,
        }
    run_method(args.worker, *make_data(10_000, 0.5, args.seed))  # imports, lazy code pages
    scores, labels = make_data(args.pixels, args.anomaly_rate, args.seed)
    base = rss_mib()
    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        metrics = run_method(args.worker, scores, labels)
        times.append(time.perf_counter() - start)
    return {
        "pixels": args.pixels,
        "seconds": min(times),
        "seconds_all": times,
        "pixels_per_s": args.pixels / min(times),
        "peak_mib": peak_rss_mib() - base,
        "metrics": metrics,
    }


def spawn(args: argparse.Namespace, name: str) -> dict:
    cmd = [sys.executable, __file__, "--worker", name]
    for key in ("pixels", "anomaly_rate", "seed", "repeat", "threads", "images"):
        cmd += [f"--{key.replace('_', '-')}", str(getattr(args, key))]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    repo = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = repo + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        sys.exit(f"{name} failed:\n{out.stderr}")
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pixels", type=int, default=20_000_000)
    parser.add_argument("--anomaly-rate", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch/OpenMP threads")
    parser.add_argument("--images", type=int, default=100, help="2048×1024 images streamed")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--worker", choices=(*METHODS, "dataset"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return

    results = {name: spawn(args, name) for name in METHODS}
    results[f"streaming {args.images}×2048×1024"] = spawn(args, "dataset")
    sk, st, ex = results["sklearn"], results["streaming"], results["exact"]
    summary = {
        "streaming_speedup_vs_sklearn": sk["seconds"] / st["seconds"],
        "streaming_memory_fraction_of_sklearn": st["peak_mib"] / sk["peak_mib"],
        "exact_max_abs_diff_vs_sklearn": max(
            abs(ex["metrics"][k] - sk["metrics"][k]) for k in ("ap", "auroc", "fpr95")
        ),
        "streaming_abs_diff_vs_exact": {
            k: abs(st["metrics"][k] - ex["metrics"][k]) for k in ("ap", "auroc", "fpr95")
        },
    }
    print(f"{args.pixels:,} pixels, {args.threads} thread(s), best of {args.repeat}")
    print(f"{'method':<26}{'seconds':>9}{'Mpixel/s':>10}{'peak MiB':>10}")
    for name, r in results.items():
        print(
            f"{name:<26}{r['seconds']:>9.2f}{r['pixels_per_s'] / 1e6:>10.1f}{r['peak_mib']:>10.0f}"
        )
    print("(peak MiB: above the input for the first three rows; whole process for the last)")
    for key, value in summary.items():
        print(f"{key}: {value:.3g}" if isinstance(value, float) else f"{key}: {value}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        record = {
            "args": {k: v for k, v in vars(args).items() if k not in ("out", "worker")},
            "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
            "results": results,
            "summary": summary,
        }
        args.out.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
