"""Forward time of each segmentor, of the OoD head, and of segmentor + head + scores.

At 1024×512 and 2048×1024 (--sizes), batch 1 (--batches), on the CPU and (when present) CUDA in
fp32 and fp16 (`AnomalySegmenter.convert_networks`: fp16 weights, float32 scores), with each
test-time averaging of --tta (it changes the full time only), eager and, with --compile MODE,
also torch.compile'd (segmentor + head + score + train ids as one function; compile time
reported apart). The full time is also given as this process's CPU time (`full_cpu_ms`, CUDA rows
included: the host's share). Real checkpoints from --data-root are used where they exist (ENet,
ESPNet); the torchvision models run with random weights (same cost). The head's cost is reported
as a ratio of its segmentor's, both measured eagerly in the same run (a compiled call is one
graph: its rows have the full time only).

    python benchmarks/model_speed.py --data-root ../shared/data --out /tmp/model_speed.json
    python benchmarks/model_speed.py --segmentors enet --device cuda --batches 1,4 \
        --compile reduce-overhead --head head.pt --out /tmp/model_speed.json
    python benchmarks/model_speed.py --segmentors enet --sizes 1024x512 --tta none,flip,scales \
        --head models/enet_cityscapes_sleeg.pt --out /tmp/tta_speed.json

--ensemble adds the rows of ensemble files (or shipped ensemble names, head: enet_dabnet_sleeg)
after the segmentors' in the same run: the full time of the ensemble's score and train ids, as
the node runs it (its heads' cost and every member's forward), e.g. against the ENet default:

    python benchmarks/model_speed.py --segmentors enet --head models/enet_cityscapes_sleeg.pt \
        --ensemble enet_dabnet_sleeg --sizes 1024x512 --tta scales --device cpu
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from sleeg_core.model.head import DEFAULT_WIDTH, OoDHead
from sleeg_core.model.headfile import HeadFile
from sleeg_core.model.inference import AnomalySegmenter, load_segmenter
from sleeg_core.model.tta import TTA_MODES
from sleeg_core.segmentors import build_segmentor
from sleeg_core.segmentors.base import COMPILE_MODES

REAL_WEIGHTS = {
    "enet": "weights/enet_cityscapes/enet.pth",
    "espnet": "weights/espnet_cityscapes/espnet_p_2_q_8.pth",
}
SIZES = {"1024x512": (512, 1024), "2048x1024": (1024, 2048)}


def timed(fn, device: torch.device, repeat: int, warmup: int = 2) -> float:
    """Median wall time of fn() in ms (synchronised on CUDA)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def cpu_time(fn, repeat: int) -> float:
    """Median CPU time of this process (all its threads) per fn() call in ms: the work without
    the waits for a core, steadier than wall time on a machine shared with other jobs."""
    times = []
    for _ in range(repeat):
        c0 = time.process_time()
        fn()
        times.append((time.process_time() - c0) * 1e3)
    return statistics.median(times)


def measure(
    name: str,
    weights: Path | None,
    shape: tuple[int, int, int],
    device: torch.device,
    half: bool,
    repeat: int,
    head_file: HeadFile | None,
    compile_mode: str | None = None,
    tta: str = "none",
) -> dict[str, float]:
    """Times (ms) of one configuration; `shape` is (batch, height, width)."""
    if head_file is not None and head_file.segmentor == name:
        segmentor = build_segmentor(name, weights, **head_file.segmentor_options)
        head = head_file.build_head()
    else:
        segmentor = build_segmentor(name, weights)
        head = OoDHead(segmentor.info.feature_channels).eval()
    lam = head_file.lam if head_file else 0.5
    model = AnomalySegmenter(segmentor, head, lam=lam, tta=tta).to(device).eval()

    def parts(images: torch.Tensor) -> dict[str, float]:
        features = segmentor(images).features
        times = {"segmentor_ms": timed(lambda: segmentor(images), device, repeat)}
        with torch.no_grad():
            times["head_ms"] = timed(lambda: head(features), device, repeat)
        return times

    return model_times(model, shape, device, half, repeat, compile_mode, parts)


def measure_ensemble(
    head: str,
    shape: tuple[int, int, int],
    device: torch.device,
    half: bool,
    repeat: int,
    compile_mode: str | None = None,
    tta: str = "none",
) -> dict[str, float]:
    """Times (ms) of an ensemble file's model (full time only: it has several segmentors)."""
    model, _ = load_segmenter(None, None, head, str(device))
    model.tta = tta
    return model_times(model, shape, device, half, repeat, compile_mode)


def model_times(
    model: torch.nn.Module,
    shape: tuple[int, int, int],
    device: torch.device,
    half: bool,
    repeat: int,
    compile_mode: str | None,
    parts: Callable[[torch.Tensor], dict[str, float]] | None = None,
) -> dict[str, float]:
    """Full-frame wall and CPU times (ms) of `model` on random images of `shape` (batch, height,
    width), compiled first with `compile_mode`; eager, `parts(images)` adds the times of its
    networks (segmentor_ms, head_ms; NaN otherwise)."""
    if half:
        model.convert_networks(torch.float16)
    batch, height, width = shape
    images = torch.randint(0, 256, (batch, 3, height, width), dtype=torch.uint8, device=device)
    times = dict.fromkeys(("compile_s", "segmentor_ms", "head_ms"), math.nan)
    if compile_mode:
        torch.compiler.reset()  # a fresh cache for each configuration (and no recompile limit)
        start = time.perf_counter()
        model.compile_networks(compile_mode)
        model(images, scores=("sleeg",))  # compiles
        times["compile_s"] = time.perf_counter() - start
    elif parts is not None:
        times |= parts(images)
    times["full_ms"] = timed(lambda: model(images, scores=("sleeg",)), device, repeat)
    times["full_cpu_ms"] = cpu_time(lambda: model(images, scores=("sleeg",)), repeat)
    times["head_over_segmentor"] = times["head_ms"] / times["segmentor_ms"]
    times["images_per_s"] = 1e3 * batch / times["full_ms"]
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_root = Path(os.environ.get("SLEEG_SHARED", "../shared")) / "data"
    parser.add_argument("--data-root", type=Path, default=default_root)
    parser.add_argument(
        "--segmentors",
        default="enet,espnet,lraspp_mobilenet_v3_large,fcn_resnet50,deeplabv3_resnet50",
    )
    parser.add_argument("--sizes", default="1024x512,2048x1024")
    parser.add_argument("--batches", default="1", help="batch sizes, e.g. 1,4")
    parser.add_argument(
        "--device",
        choices=("all", "cpu", "cuda"),
        default="all",
        help="all: the CPU, and CUDA (fp32 and fp16) when present",
    )
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--head",
        type=Path,
        help="trained head file: its segmentor options and "
        "head config are used for that segmentor (else a default-width head)",
    )
    parser.add_argument(
        "--ensemble",
        default="",
        help="ensemble files or shipped ensemble names, comma-separated: measured after the "
        "segmentors, in the same run",
    )
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: PyTorch default)")
    parser.add_argument(
        "--compile",
        choices=COMPILE_MODES,
        help="also measure each model torch.compile'd in this mode",
    )
    parser.add_argument(
        "--tta",
        default="none",
        help=f"test-time averagings, comma-separated: {', '.join(TTA_MODES)}",
    )
    parser.add_argument("--out", type=Path, help="JSON file for the results")
    args = parser.parse_args(argv)
    ttas = args.tta.split(",")
    if unknown := [t for t in ttas if t not in TTA_MODES]:
        parser.error(f"unknown --tta {unknown}; choose from {', '.join(TTA_MODES)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    head_file = HeadFile.load(args.head) if args.head else None
    torch.set_flush_denormal(True)
    devices = [("cpu", False)] if args.device in ("all", "cpu") else []
    if args.device == "cuda" or (args.device == "all" and torch.cuda.is_available()):
        devices += [("cuda", False), ("cuda", True)]
    modes = [None, args.compile] if args.compile else [None]
    batches = [int(b) for b in args.batches.split(",")]
    meta = {
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "head": str(args.head) if args.head else f"default width {DEFAULT_WIDTH}",
    }
    rows = []
    print(
        f"{'segmentor':28} {'size':>9} {'batch':>5} {'device':>25} {'seg ms':>8} "
        f"{'head ms':>8} {'full ms':>8} {'CPU ms':>8} {'img/s':>8} {'compile s':>9}"
    )
    models = [(n, False) for n in args.segmentors.split(",") if n]
    models += [(e, True) for e in args.ensemble.split(",") if e]
    for name, ensemble in models:
        rel = REAL_WEIGHTS.get(name)
        weights = args.data_root / rel if rel and (args.data_root / rel).is_file() else None
        for size_name, batch in itertools.product(args.sizes.split(","), batches):
            for (dev, half), mode, tta in itertools.product(devices, modes, ttas):
                shape = (batch, *SIZES[size_name])
                dev_ = torch.device(dev)
                if ensemble:
                    r = measure_ensemble(name, shape, dev_, half, args.repeat, mode, tta)
                else:
                    r = measure(name, weights, shape, dev_, half, args.repeat, head_file, mode, tta)
                label = f"{dev}{'-fp16' if half else ''}{f'-{mode}' if mode else ''}"
                label += f"-tta-{tta}" if tta != "none" else ""
                rows.append(
                    {
                        "segmentor": name,
                        "size": size_name,
                        "batch": batch,
                        "device": label,
                        "tta": tta,
                        "real_weights": ensemble or weights is not None,
                        **r,
                    }
                )
                print(
                    f"{name:28} {size_name:>9} {batch:5d} {label:>25} {r['segmentor_ms']:8.2f} "
                    f"{r['head_ms']:8.2f} {r['full_ms']:8.2f} {r['full_cpu_ms']:8.1f} "
                    f"{r['images_per_s']:8.1f} "
                    f"{r['compile_s']:9.1f}",
                    flush=True,
                )
                if args.out:  # after every row: a run stopped by a timeout keeps what it has
                    args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
