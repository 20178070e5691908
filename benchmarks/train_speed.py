"""Training throughput and where a step's time goes: data wait, patches, segmentor, head,
refinement, losses, backward + update.

Two passes of `--steps` steps: the throughput as `sleeg train` runs (steps queued on the device,
one step's figures read a step late, the device synchronised only at the end), then the phases
(wall time of the trainer's own phases, the device synchronised at each phase boundary, which
forbids that overlap; a profiler would inflate the phases made of many small ops).

    python benchmarks/train_speed.py --data-root ../shared/data --config config/train_enet_cpu.yaml
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import torch

from sleeg_core.common.config import load_config
from sleeg_core.train.config import TrainConfig
from sleeg_core.train.metrics_log import StepStats
from sleeg_core.train.sources import SourceConfig, collect_frames
from sleeg_core.train.trainer import Trainer

PHASES = ("patches", "segmentor", "head_forward", "refinement", "losses", "backward_and_update")


def run_steps(trainer: Trainer, loader: Iterator[torch.Tensor], steps: int) -> tuple[float, float]:
    """Run `steps` steps as `Trainer.fit` does (each step's figures read after the next step is
    queued); returns (wall seconds, seconds waiting for the loader)."""
    data_s, previous = 0.0, None
    t0 = time.perf_counter()
    for _ in range(steps):
        t = time.perf_counter()
        images = next(loader)
        data_s += time.perf_counter() - t
        values = trainer.train_step(images)
        if previous is not None:
            StepStats.of(previous)
        previous = values
    StepStats.of(previous)
    return time.perf_counter() - t0, data_s


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_root = Path(os.environ.get("SLEEG_SHARED", "../shared")) / "data"
    parser.add_argument("--data-root", type=Path, default=default_root)
    parser.add_argument("--config", type=Path, default=Path("config/train_enet_cpu.yaml"))
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: PyTorch default)")
    parser.add_argument("--out", type=Path, help="JSON file")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    weights = args.data_root / "weights/enet_cityscapes/enet.pth"
    overrides = [f"segmentor.weights={weights}", "out=/tmp/sleeg_train_speed", *args.overrides]
    cfg = load_config(TrainConfig, args.config, overrides)
    cfg.data.sources = [SourceConfig(path=str(args.data_root / "driving"))]
    trainer = Trainer(cfg)
    frames, _ = collect_frames(cfg.data.sources, Path(cfg.out), progress=False)
    warmup = 3
    loader = iter(trainer.loader(frames, warmup + 2 * args.steps))
    for _ in range(warmup):
        StepStats.of(trainer.train_step(next(loader)))
    wall, data_s = run_steps(trainer, loader, args.steps)
    phase_seconds = trainer.time_phases()
    phased_wall, _ = run_steps(trainer, loader, args.steps)
    phase_ms = {phase: phase_seconds[phase] * 1e3 / args.steps for phase in PHASES}
    step_ms, phased_step_ms = wall / args.steps * 1e3, phased_wall / args.steps * 1e3
    result = {
        "device": str(trainer.device),
        "threads": torch.get_num_threads(),
        "batch_size": cfg.batch_size,
        "crop": list(cfg.data.augment.crop),
        "iterations_per_s": args.steps / wall,
        "step_ms": step_ms,
        "data_wait_ms": data_s / args.steps * 1e3,
        "data_wait_share": data_s / wall,
        "phased_step_ms": phased_step_ms,
        "phase_ms": phase_ms,
        "phase_share": {k: v / phased_step_ms for k, v in phase_ms.items()},
    }
    print(
        f"{result['iterations_per_s']:.2f} it/s, {step_ms:.0f} ms/step on {trainer.device} "
        f"(batch {cfg.batch_size}, crop {cfg.data.augment.crop})"
    )
    print(f"  {'data wait':22} {result['data_wait_ms']:8.1f} ms  {result['data_wait_share']:6.1%}")
    print(f"phases ({phased_step_ms:.0f} ms/step with the device synchronised at each):")
    for k, v in phase_ms.items():
        print(f"  {k:22} {v:8.1f} ms  {v / phased_step_ms:6.1%}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
