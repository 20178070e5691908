"""Accuracy of SLEEG on a frozen Cityscapes segmentor against that segmentor's logit baselines.

Protocol v2 (docs/accuracy.md):
- segmentor: the real ENet (`weights/enet_cityscapes/enet.pth`) or DABNet
  (`weights/dabnet_cityscapes/DABNet_cityscapes.pth`), frozen (`--segmentor`);
- training: a SLEEG head trained self-supervised on normal Cityscapes-train frames only
  (`cityscapes_train/images`, 2,641 frames, 1024×512; no image of an evaluation set is ever a
  training image), with `config/train_<segmentor>_<profile>.yaml` ("cpu": the recipe, which
  trains in about 16 min (ENet) or 2 min (DABNet) on one CPU thread; "gpu": the same recipe with
  more loader workers); every frame, or every k-th with `--train-every k` for a quick run;
- evaluation: Road Anomaly, RoadAnomaly21 val, RoadObstacle21 val (off-road void) and Fishyscapes
  Static val, the network run as the node runs it (1024×512, aspect kept and padded; `--size
  native` runs it at each image's own size), the scores scored at the labels' native resolution,
  all valid pixels pooled; SLEEG (and its TAE/TORE terms)
  against msp, maxlogit, entropy, energy and sml (SML statistics from 100 training frames).
  One head and one config per segmentor for every set.

Writes DIR/head.pt, DIR/results.json (metrics, the head's mask at its threshold, the false
positives by predicted class and row band, wall times, the config), DIR/results.md, the PR/ROC
curves, false-positive bar charts and example overlays, plus the training run (metrics.csv,
checkpoints/, tensorboard/), and prints, per set, whether SLEEG beats the best baseline in AP and
in FPR95, and in what share of `--bootstrap` resamples of the set's images (the same draws for
every score) it does.

    python benchmarks/accuracy.py --data-root ../shared/data --out /tmp/acc --segmentor enet
    python benchmarks/accuracy.py --data-root ../shared/data --out /tmp/acc --head models/x.pt
    python benchmarks/accuracy.py --data-root ../shared/data --out /tmp/acc_smoke --smoke
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

from sleeg_core.cli import main as sleeg_main
from sleeg_core.cli.args import NODE_SIZE
from sleeg_core.common.config import from_dict, load_config, to_dict
from sleeg_core.common.errors import SleegError
from sleeg_core.data.geometry import RESIZE_MODES
from sleeg_core.model.headfile import HeadFile
from sleeg_core.model.tta import NODE_TTA, TTA_MODES
from sleeg_core.train.config import TrainConfig
from sleeg_core.train.trainer import Trainer

REPO = Path(__file__).resolve().parent.parent
WEIGHTS = {
    "enet": "weights/enet_cityscapes/enet.pth",
    "dabnet": "weights/dabnet_cityscapes/DABNet_cityscapes.pth",
}
TRAIN_IMAGES = "cityscapes_train/images"
SML_IMAGES = 100  # training frames (evenly spaced) for SML's per-class statistics
BOOTSTRAP = 1000  # resamples of each set's images (intervals; paired head-vs-baseline shares)
SMOKE_BOOTSTRAP = 20
EVAL_SETS = {
    "road_anomaly": "anomaly/road_anomaly",
    "ra21": "anomaly/smiyc_roadanomaly21_val",
    "ro21": "anomaly/smiyc_roadobstacle21_val",
    "fs_static": "anomaly/fs_static_val",
}
BASELINES = ("msp", "maxlogit", "entropy", "energy", "sml")
HEAD_SCORES = ("sleeg", "tae", "tore")
# --smoke: a few steps on tiny crops and a low-resolution evaluation, only to check that it runs
SMOKE_OVERRIDES = [
    "iterations=2",
    "batch_size=2",
    "data.augment.crop=[64,128]",
    "data.workers=0",
    "checkpoint_every=1",
    "calibration.frames=2",
    "calibration.size=[64,128]",
]
SMOKE_EVAL_SIZE = "72x128"
SMOKE_MAX_IMAGES = 2  # per set (the first and the middle one)
SMOKE_TRAIN_EVERY = 200


def frame_step(text: str) -> int:
    """--train-every: an integer ≥ 0, where 0 means every frame as 1 does (argparse type)."""
    number = int(text)
    if number < 0:
        raise argparse.ArgumentTypeError(f"{text}: must be 0 or more")
    return max(number, 1)


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The profile's YAML with the fixed data, weights and output folder of the protocol."""
    overrides = [f"out={args.out}", f"device={args.device}", *args.set]
    if args.smoke:
        overrides = SMOKE_OVERRIDES + overrides
    config = REPO / "config" / f"train_{args.segmentor}_{args.profile}.yaml"
    cfg = load_config(TrainConfig, config, overrides)
    data = to_dict(cfg)
    data["segmentor"]["weights"] = str(args.data_root / WEIGHTS[args.segmentor])
    every = SMOKE_TRAIN_EVERY if args.smoke else args.train_every
    data["data"]["sources"] = [
        {"type": "images", "path": str(args.data_root / TRAIN_IMAGES), "every": every}
    ]
    return from_dict(TrainConfig, data)


def evaluate(args: argparse.Namespace, head: Path) -> int:
    """`sleeg eval` with the protocol's sets, scores and SML images."""
    argv = [
        "eval",
        "--segmentor",
        args.segmentor,
        "--weights",
        str(args.data_root / WEIGHTS[args.segmentor]),
        "--head",
        str(head),
        "--scores",
        args.scores,
        "--device",
        args.device,
        "--out",
        str(args.out),
        "--sml-images",
        str(args.data_root / TRAIN_IMAGES),
        "--sml-max-images",
        str(2 if args.smoke else SML_IMAGES),
    ]
    for name, path in EVAL_SETS.items():
        argv += ["--dataset", f"{name}={args.data_root / path}"]
    argv += ["--tta", args.tta, "--breakdown"]  # where the false positives are: a table per set
    if args.lam is not None:
        argv += ["--lam", str(args.lam)]
    argv += ["--bootstrap", str(SMOKE_BOOTSTRAP if args.smoke else args.bootstrap)]
    if args.smoke:
        argv += ["--size", SMOKE_EVAL_SIZE, "--examples", "1"]
        argv += ["--max-images", str(SMOKE_MAX_IMAGES)]
    else:
        argv += ["--size", args.size, "--resize-mode", args.resize_mode]
    return sleeg_main(argv)


def verdict(results: dict, score: str) -> dict[str, dict[str, object]]:
    """Per set: the best baseline in AP and in FPR95, and whether `score` beats both."""
    out = {}
    for name, result in results["datasets"].items():
        scores = result["scores"]
        if not all(s in scores for s in (*BASELINES, score)):
            continue
        best_ap = max(BASELINES, key=lambda s: scores[s]["ap"])
        best_fpr = min(BASELINES, key=lambda s: scores[s]["fpr95"])
        out[name] = {
            "best_baseline_ap": best_ap,
            "best_baseline_fpr95": best_fpr,
            "beats_ap": scores[score]["ap"] > scores[best_ap]["ap"],
            "beats_fpr95": scores[score]["fpr95"] < scores[best_fpr]["fpr95"],
        }
        paired = result.get("bootstrap", {}).get("paired", {})
        if best_ap in paired and best_fpr in paired:  # share of image resamples it beats them in
            out[name]["resampled_beats_ap"] = paired[best_ap]["ap"]
            out[name]["resampled_beats_fpr95"] = paired[best_fpr]["fpr95"]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", required=True, type=Path, help="the shared data folder")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--segmentor", choices=tuple(WEIGHTS), default="enet")
    parser.add_argument("--profile", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument(
        "--head", type=Path, help="evaluate this trained head file instead of training one"
    )
    parser.add_argument(
        "--train-only",
        action="store_true",
        help="train and write head.pt, no evaluation (train where the evaluation sets are not)",
    )
    parser.add_argument(
        "--train-every",
        type=frame_step,
        default=1,
        metavar="K",
        help="train on every K-th Cityscapes-train frame in sorted order (default 1: all 2,641; "
        "0 the same; 5: 529 frames, a quick run that scores a few points lower, docs/accuracy.md)",
    )
    parser.add_argument(
        "--scores",
        default=",".join((*BASELINES, *HEAD_SCORES)),
        help="scores to evaluate (ablations may skip the baselines; the verdict needs them)",
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--tta", choices=TTA_MODES, default=NODE_TTA, help=f"sleeg eval --tta (default {NODE_TTA})"
    )
    parser.add_argument(
        "--lam", type=float, help="λ of the sleeg score (sleeg eval --lam; default: the head's)"
    )
    parser.add_argument(
        "--size",
        default=NODE_SIZE,
        help=f"inference size HxW or native (sleeg eval --size; default {NODE_SIZE}, the node's)",
    )
    parser.add_argument(
        "--resize-mode", choices=RESIZE_MODES, default="pad", help="default pad, the node's"
    )
    parser.add_argument("--smoke", action="store_true", help="a few tiny steps: does it run?")
    parser.add_argument(
        "--bootstrap",
        type=int,
        default=BOOTSTRAP,
        help=f"resamples of each set's images for intervals (sleeg eval --bootstrap; default "
        f"{BOOTSTRAP}; 0: off)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (1: one compute thread beside the loader worker; two threads on "
        "a busy 2-core machine measured up to 15× slower per step)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a training config key (ablations; the protocol's numbers use none)",
    )
    args = parser.parse_args()
    args.data_root = args.data_root.resolve()
    torch.set_num_threads(args.threads)
    try:
        t0 = time.perf_counter()
        if args.head:
            head = args.head
            train = HeadFile.load(head).train_config
        else:
            cfg = train_config(args)
            Trainer(cfg).fit(progress=sys.stderr.isatty())
            head, train = args.out / "head.pt", to_dict(cfg)
        t_train = time.perf_counter() - t0
        if args.train_only:
            print(f"wall time: train {t_train / 60:.1f} min; head: {head}")
            return 0
        if evaluate(args, head) != 0:
            return 2
        t_eval = time.perf_counter() - t0 - t_train
    except SleegError as err:
        print(f"accuracy: error: {err}", file=sys.stderr)
        return 2
    results = json.loads((args.out / "results.json").read_text())
    results["protocol"] = {
        "version": 2,
        "segmentor": args.segmentor,
        "profile": args.profile,
        "smoke": args.smoke,
        "head": str(head),
        "train_images": TRAIN_IMAGES,
        "eval_sets": EVAL_SETS,
        "train_config": train,
        "cpu_count": os.cpu_count(),
        "torch_threads": args.threads,
        "tta": args.tta,
        "inference_size": args.size,
        "resize_mode": None if args.size == "native" else args.resize_mode,
    }
    results["wall_s"] = {"train": t_train, "eval": t_eval, "total": t_train + t_eval}
    results["verdict"] = verdict(results, "sleeg")
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    print(f"wall time: train {t_train / 60:.1f} min + eval {t_eval / 60:.1f} min")
    for name, v in results["verdict"].items():
        shares = ""
        if "resampled_beats_ap" in v:
            shares = (
                f" (in {100 * v['resampled_beats_ap']:.0f} % and "
                f"{100 * v['resampled_beats_fpr95']:.0f} % of the image resamples)"
            )
        print(
            f"{name}: sleeg vs best baseline — AP ({v['best_baseline_ap']}): "
            f"{'beats' if v['beats_ap'] else 'does NOT beat'}, FPR95 "
            f"({v['best_baseline_fpr95']}): {'beats' if v['beats_fpr95'] else 'does NOT beat'}"
            f"{shares}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
