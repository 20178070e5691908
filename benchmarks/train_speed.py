"""Training throughput and where a step's time goes: data wait, patches, segmentor, head,
refinement, losses, backward + update (wall time of the trainer's own phases, the device
synchronised at each phase boundary; a profiler would inflate the phases made of many small ops).

    python benchmarks/train_speed.py --data-root ../shared/data --config config/train_enet_cpu.yaml
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

from sleeg_core.config import load_config
from sleeg_core.train_sources import SourceConfig, collect_frames
from sleeg_core.trainer import TrainConfig, Trainer

PHASES = ("patches", "segmentor", "head_forward", "refinement", "losses", "backward_and_update")


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
    loader = iter(trainer.loader(frames, warmup + args.steps))
    for _ in range(warmup):
        trainer.train_step(next(loader))
    phase_seconds = trainer.time_phases()
    data_s = 0.0
    t0 = time.perf_counter()
    for _ in range(args.steps):
        t = time.perf_counter()
        images = next(loader)
        data_s += time.perf_counter() - t
        trainer.train_step(images)
    wall = time.perf_counter() - t0
    phase_ms = {phase: phase_seconds[phase] * 1e3 / args.steps for phase in PHASES}
    step_ms = wall / args.steps * 1e3
    result = {
        "device": str(trainer.device),
        "threads": torch.get_num_threads(),
        "batch_size": cfg.batch_size,
        "crop": list(cfg.data.augment.crop),
        "iterations_per_s": args.steps / wall,
        "step_ms": step_ms,
        "data_wait_ms": data_s / args.steps * 1e3,
        "data_wait_share": data_s / wall,
        "phase_ms": phase_ms,
        "phase_share": {k: v / step_ms for k, v in phase_ms.items()},
    }
    print(
        f"{result['iterations_per_s']:.2f} it/s, {step_ms:.0f} ms/step on {trainer.device} "
        f"(batch {cfg.batch_size}, crop {cfg.data.augment.crop})"
    )
    print(f"  {'data wait':22} {result['data_wait_ms']:8.1f} ms  {result['data_wait_share']:6.1%}")
    for k, v in phase_ms.items():
        print(f"  {k:22} {v:8.1f} ms  {v / step_ms:6.1%}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
