"""`sleeg train`: self-supervised OoD head training from unlabeled images and/or rosbags."""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from sleeg_core.common.config import from_dict, load_config, to_dict
from sleeg_core.model.shipped_heads import pick_segmentor
from sleeg_core.model.weights import resolve as resolve_weights
from sleeg_core.segmentors import Segmentor, build_segmentor
from sleeg_core.train import distributed
from sleeg_core.train.config import TrainConfig
from sleeg_core.train.trainer import Trainer

# flag → dotted config key
FLAG_KEYS = {
    "segmentor": "segmentor.name",
    "weights": "segmentor.weights",
    "iterations": "iterations",
    "batch_size": "batch_size",
    "device": "device",
    "out": "out",
    "seed": "seed",
}


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "train",
        help="train an OoD head on unlabeled normal frames",
        description="Train the SLEEG OoD head self-supervised. Settings: defaults ← --config "
        "YAML ← --set key=value ← flags. The run folder gets checkpoints/, metrics.csv, "
        "tensorboard/, config.yaml and head.pt. Several processes or machines: `torchrun "
        "--nproc_per_node N -m sleeg_core.cli train ...` (--batch-size is per process).",
    )
    parser.add_argument("--config", type=Path, help="YAML config (see config/train_*.yaml)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. optim.lr=0.005",
    )
    parser.add_argument("--segmentor", help="segmentor name (segmentor.name)")
    parser.add_argument(
        "--weights", help="segmentor checkpoint: a file or a known name (segmentor.weights)"
    )
    parser.add_argument(
        "--images",
        action="append",
        default=[],
        metavar="DIR",
        help="add an image folder as a data source (repeatable)",
    )
    parser.add_argument(
        "--bag",
        action="append",
        default=[],
        metavar="BAG",
        help="add a rosbag2 (.mcap/.db3/folder) as a data source (repeatable)",
    )
    parser.add_argument("--topic", help="image topic of the --bag sources")
    parser.add_argument("--every", type=int, default=1, help="keep every k-th bag frame")
    parser.add_argument("--iterations", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--device", help="auto | cpu | cuda")
    parser.add_argument("--out", help="run folder")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    parser.add_argument("--print-config", action="store_true", help="print the config and exit")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(run=run)


def resolve_config(args: argparse.Namespace) -> TrainConfig:
    overrides = list(args.overrides)
    overrides += [
        f"{key}={getattr(args, flag)}"
        for flag, key in FLAG_KEYS.items()
        if getattr(args, flag) is not None
    ]
    cfg = load_config(TrainConfig, args.config, overrides)
    extra = [{"type": "images", "path": p} for p in args.images]
    extra += [
        {"type": "bag", "path": b, "topic": args.topic or "", "every": args.every} for b in args.bag
    ]
    if extra:
        data = to_dict(cfg)
        data["data"]["sources"] += extra
        cfg = from_dict(TrainConfig, data)
    return cfg


def load_segmentor(cfg: TrainConfig) -> Segmentor | None:
    """The frozen segmentor of `cfg`, with `segmentor.weights` a file or a known name (the config
    keeps the name); None without weights (the Trainer says what is missing)."""
    seg = cfg.segmentor
    if not seg.weights:
        return None
    name = pick_segmentor(seg.name, seg.weights, None)
    return build_segmentor(name, resolve_weights(seg.weights), **seg.options)


def run(args: argparse.Namespace) -> int:
    cfg = resolve_config(args)
    if args.print_config:
        print(yaml.safe_dump(to_dict(cfg), sort_keys=False), end="")
        return 0
    with distributed.session(cfg.device) as dist:  # torchrun: one process of several
        trainer = Trainer(cfg, load_segmentor(cfg), dist)
        head_file = trainer.fit(resume=args.resume, progress=not args.no_progress)
    if head_file is None:  # not rank 0
        return 0
    print(
        f"head written to {Path(cfg.out) / 'head.pt'} (threshold {head_file.threshold:.4g}: "
        f"{head_file.threshold_rule})"
    )
    return 0
