"""Pseudo-anomaly rendering cost: wall time per batch and the number of tensor operations.

On a GPU a training step is launch-bound (patch rendering took 41 % of a 39 ms step on an NVIDIA
H200, PyTorch 2.11 + CUDA 13), so what counts there is how many kernels a batch takes, not their
arithmetic. This counts them without a GPU: the leaf ATen operations of one rendering that are
not views (each is one kernel launch on a GPU), with the CPU profiler; and times the rendering on
the CPU.

    python benchmarks/patch_ops.py --data-root ../shared/data [--out patch_ops.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from sleeg_core.data.images import list_images, read_rgb
from sleeg_core.train.patch_config import PatchConfig
from sleeg_core.train.patches import PatchRenderer

# operations that launch no kernel: views, metadata, allocation, no-op conversions
NOT_KERNELS = {
    "aten::view", "aten::slice", "aten::select", "aten::as_strided", "aten::narrow",
    "aten::unbind", "aten::expand", "aten::expand_as", "aten::empty", "aten::empty_strided",
    "aten::empty_like", "aten::detach", "aten::alias", "aten::lift_fresh", "aten::unsqueeze",
    "aten::squeeze", "aten::permute", "aten::t", "aten::reshape", "aten::_reshape_alias",
    "aten::_unsafe_view", "aten::view_as", "aten::resolve_conj", "aten::resolve_neg",
    "aten::result_type", "aten::resize_", "aten::to", "aten::item", "aten::_local_scalar_dense",
    "aten::is_nonzero", "aten::set_",
}  # fmt: skip

CASES = {
    "harris, areas U(1 %, 5 %)": PatchConfig(),
    "harris, areas log-U(1 %, 15 %)": PatchConfig(
        area_range=(0.01, 0.15), area_sampling="log_uniform"
    ),
    "square, areas U(1 %, 5 %)": PatchConfig(shape="square"),
}


def kernel_ops(renderer: PatchRenderer, images: torch.Tensor) -> Counter[str]:
    """The leaf, non-view ATen operations of one rendering, by name."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        renderer(images, torch.Generator().manual_seed(1))
    return Counter(
        e.name
        for e in prof.events()
        if e.name.startswith("aten::")
        and e.name not in NOT_KERNELS
        and not any(c.name.startswith("aten::") for c in e.cpu_children)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_root = Path(os.environ.get("SLEEG_SHARED", "../shared")) / "data"
    parser.add_argument("--data-root", type=Path, default=default_root)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=Path, help="JSON file")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    frames = list_images(args.data_root / "cityscapes_train" / "images")[:8]
    if len(frames) < 8:
        print(f"patch_ops: error: need 8 frames in {args.data_root}/cityscapes_train/images")
        return 2
    full = torch.stack([torch.from_numpy(read_rgb(f)).permute(2, 0, 1) for f in frames])
    results = []
    for batch, (height, width) in ((8, (512, 1024)), (4, (256, 512))):
        images = full[:batch, :, :height, :width].contiguous()
        for name, config in CASES.items():
            renderer = PatchRenderer(config)
            renderer(images, torch.Generator().manual_seed(0))  # warm-up
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                renderer(images, torch.Generator().manual_seed(1))
                times.append(time.perf_counter() - start)
            ops = kernel_ops(renderer, images)
            row = {
                "batch": f"{batch}×3×{height}×{width}",
                "case": name,
                "patches": batch * config.n_patches,
                "kernel_ops": sum(ops.values()),
                "top_ops": dict(ops.most_common(5)),
                "cpu_ms": statistics.median(times) * 1e3,
            }
            results.append(row)
            print(
                f"{row['batch']:14} {name:32} {row['kernel_ops']:4d} ops  "
                f"{row['cpu_ms']:7.1f} ms (CPU, 1 thread)"
            )
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
