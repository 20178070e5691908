"""Forward time of each segmentor, of the OoD head, and of segmentor + head + scores.

Batch 1, at 1024×512 and 2048×1024, on the CPU and (when present) CUDA in fp32 and fp16, eager
and, with --compile MODE, also torch.compile'd (compile time reported apart). Real checkpoints
from --data-root are used where they exist (ENet, ESPNet); the torchvision models run with random
weights (same cost). The head's cost is reported as a ratio of its segmentor's, both measured in
the same run.

    python benchmarks/model_speed.py --data-root ../shared/data --out /tmp/model_speed.json
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
from pathlib import Path

import torch

from sleeg_core.head import DEFAULT_WIDTH, OoDHead
from sleeg_core.headfile import HeadFile
from sleeg_core.inference import AnomalySegmenter
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


def measure(
    name: str,
    weights: Path | None,
    size: tuple[int, int],
    device: torch.device,
    half: bool,
    repeat: int,
    head_file: HeadFile | None,
    compile_mode: str | None = None,
) -> dict[str, float]:
    if head_file is not None and head_file.segmentor == name:
        segmentor = build_segmentor(name, weights, **head_file.segmentor_options).to(device)
        head = head_file.build_head().to(device)
    else:
        segmentor = build_segmentor(name, weights).to(device)
        head = OoDHead(segmentor.info.feature_channels).to(device).eval()
    model = AnomalySegmenter(segmentor, head, lam=head_file.lam if head_file else 0.5).eval()
    images = torch.randint(0, 256, (1, 3, *size), dtype=torch.uint8, device=device)
    autocast = torch.autocast(device.type, dtype=torch.float16, enabled=half)
    compile_s = math.nan
    if compile_mode:
        start = time.perf_counter()
        model.compile_networks(compile_mode)
        with autocast:
            model(images, scores=("sleeg",))  # compiles the segmentor and the head
        compile_s = time.perf_counter() - start
    features = segmentor(images).features

    def seg():
        with autocast:
            segmentor(images)

    def head_only():
        with torch.no_grad(), autocast:
            head(features)

    def full():
        with autocast:
            model(images, scores=("sleeg",))

    seg_ms = timed(seg, device, repeat)
    head_ms = timed(head_only, device, repeat)
    full_ms = timed(full, device, repeat)
    return {
        "compile_s": compile_s,
        "segmentor_ms": seg_ms,
        "head_ms": head_ms,
        "full_ms": full_ms,
        "head_over_segmentor": head_ms / seg_ms,
        "full_over_segmentor": full_ms / seg_ms,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_root = Path(os.environ.get("SLEEG_SHARED", "../shared")) / "data"
    parser.add_argument("--data-root", type=Path, default=default_root)
    parser.add_argument(
        "--segmentors",
        default="enet,espnet,lraspp_mobilenet_v3_large,fcn_resnet50,deeplabv3_resnet50",
    )
    parser.add_argument("--sizes", default="1024x512,2048x1024")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--head",
        type=Path,
        help="trained head file: its segmentor options and "
        "head config are used for that segmentor (else a default-width head)",
    )
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: PyTorch default)")
    parser.add_argument(
        "--compile",
        choices=COMPILE_MODES,
        help="also measure each model torch.compile'd in this mode",
    )
    parser.add_argument("--out", type=Path, help="JSON file for the results")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    head_file = HeadFile.load(args.head) if args.head else None
    torch.set_flush_denormal(True)
    devices = [("cpu", False)]
    if torch.cuda.is_available():
        devices += [("cuda", False), ("cuda", True)]
    modes = [None, args.compile] if args.compile else [None]
    rows = []
    print(
        f"{'segmentor':28} {'size':>9} {'device':>20} {'seg ms':>8} {'head ms':>8} "
        f"{'full ms':>8} {'head/seg':>8}"
    )
    for name in args.segmentors.split(","):
        rel = REAL_WEIGHTS.get(name)
        weights = args.data_root / rel if rel and (args.data_root / rel).is_file() else None
        for size_name in args.sizes.split(","):
            for (dev, half), mode in itertools.product(devices, modes):
                r = measure(
                    name,
                    weights,
                    SIZES[size_name],
                    torch.device(dev),
                    half,
                    args.repeat,
                    head_file,
                    mode,
                )
                label = f"{dev}{'-fp16' if half else ''}{f'-{mode}' if mode else ''}"
                rows.append(
                    {
                        "segmentor": name,
                        "size": size_name,
                        "device": label,
                        "real_weights": weights is not None,
                        **r,
                    }
                )
                print(
                    f"{name:28} {size_name:>9} {label:>20} {r['segmentor_ms']:8.1f} "
                    f"{r['head_ms']:8.1f} {r['full_ms']:8.1f} {r['head_over_segmentor']:8.3f}",
                    flush=True,
                )
    meta = {
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "head": str(args.head) if args.head else f"default width {DEFAULT_WIDTH}",
    }
    if args.out:
        args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
