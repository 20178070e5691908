"""Self-supervised training of the OoD head on unlabeled normal frames (the SLEEG recipe).

One step: random crops → pseudo-anomalies pasted on the device → frozen segmentor (no grad) →
head → refinement of the pasted labels (JEM during warm-up, then the SLEEG score) → L_a + β·L_o →
SGD with a poly schedule. Every random choice of step k is seeded by (seed, k) and checkpoints
hold the head, optimizer and patch bank, so a resumed run ends bit-for-bit where an uninterrupted
one would.

Launched by torchrun (`sleeg_core.train.distributed`), every process trains the same head on
its slice of each step's batch with gradients averaged (DistributedDataParallel); rank r > 0 adds
r to the seeds of its dropout and patches. Rank 0 alone writes the run folder.
"""

from __future__ import annotations

import csv
import math
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import yaml
from torch.profiler import record_function
from torch.utils.data import DataLoader
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from sleeg_core.common.atomic import write_atomic
from sleeg_core.common.config import to_dict
from sleeg_core.common.errors import SleegError
from sleeg_core.data.images import read_rgb, to_batch
from sleeg_core.data.labels import ROAD_TRAIN_ID
from sleeg_core.model.head import DEFAULT_WIDTH, HeadConfig, OoDHead
from sleeg_core.model.headfile import HeadFile
from sleeg_core.model.inference import AnomalySegmenter, resolve_device
from sleeg_core.model.tta import NODE_TTA, check_tta
from sleeg_core.segmentors import Segmentor, build_segmentor
from sleeg_core.segmentors.base import upsample_to_input
from sleeg_core.train.data import AugmentConfig, CropDataset, StepSampler
from sleeg_core.train.distributed import Distributed, unwrap
from sleeg_core.train.losses import total_loss
from sleeg_core.train.patches import PatchConfig, PatchRenderer
from sleeg_core.train.refinement import refine_labels, refinement_scores
from sleeg_core.train.sources import SourceConfig, collect_frames

CHECKPOINT_FORMAT = "sleeg-train-checkpoint"


@dataclass
class SegmentorConfig:
    name: str = "enet"
    weights: str = ""
    options: dict[str, Any] = field(default_factory=dict)  # e.g. feature_layer, logits_source
    # torch.compile the frozen networks ("" off; segmentors.base.COMPILE_MODES): the crop size
    # is fixed, so they compile once (plus once for the calibration size at the end)
    compile_mode: str = ""


@dataclass
class HeadSection:
    width: int = DEFAULT_WIDTH
    depth: int = 3
    dropout: float = 0.1
    # per branch, the dilation of each block; [] → one branch of dilation 1 (the paper's)
    branches: list[list[int]] = field(default_factory=list)


@dataclass
class DataConfig:
    sources: list[SourceConfig] = field(default_factory=list)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    workers: int = 2
    cache_mb: float = 0.0  # decoded frames kept in memory, per loader worker (0: none)


@dataclass
class LossConfig:
    tae_weight: float = 1.0  # 0 trains TORE alone
    # TORE weight (authors' code: 0.05); 0 trains TAE alone, which scored higher AP on both
    # evaluation sets with ENet, whose JEM is below chance (docs/accuracy.md)
    beta: float = 0.0
    gamma: float = 15.0
    dynamic_margin: bool = True  # False: the static-margin ablation (no JEM in log p_t)


@dataclass
class RefineConfig:
    # False: every pasted pixel is an anomaly. Off by default: on ENet the JEM that splits the
    # patches is at or below chance, so the split ignores an arbitrary half of each patch, and
    # turning it off scored higher on both evaluation sets (docs/accuracy.md).
    enabled: bool = False
    mode: str = "paper"  # paper: JEM during warm-up, then A | energy: always JEM (authors' code)
    warmup_iters: int = 6000
    n_candidates: int = 25


@dataclass
class OptimConfig:
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    poly_power: float = 0.9


@dataclass
class CalibrationConfig:
    fpr: float = 0.05  # default threshold: this share of normal training pixels above it
    frames: int = 16  # un-augmented training frames scored for the statistics
    size: tuple[int, int] = (512, 1024)  # (h, w) they are resized to
    tta: str = NODE_TTA  # the test-time averaging they are scored with: the node's default


@dataclass
class TrainConfig:
    segmentor: SegmentorConfig = field(default_factory=SegmentorConfig)
    head: HeadSection = field(default_factory=HeadSection)
    data: DataConfig = field(default_factory=DataConfig)
    patches: PatchConfig = field(default_factory=PatchConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    refine: RefineConfig = field(default_factory=RefineConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    # λ of the score A = log p_a + λ·log p_t (paper: 0.5). 0 = TAE alone: on ENet every λ > 0
    # lowered AP on both evaluation sets, as JEM is below chance there (docs/accuracy.md).
    lam: float = 0.0
    iterations: int = 40000
    batch_size: int = 8
    seed: int = 0
    device: str = "auto"
    amp: bool = True  # mixed precision on CUDA (ignored on CPU)
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    log_every: int = 10
    out: str = "runs/sleeg"


def poly_lr(cfg: OptimConfig, step: int, total: int) -> float:
    return cfg.lr * (1 - step / total) ** cfg.poly_power


@dataclass
class StepStats:
    loss: float
    tae: float
    tore: float
    anomaly_fraction: float  # refined anomaly pixels / all pixels
    ignore_fraction: float

    @classmethod
    def of(cls, values: torch.Tensor) -> StepStats:
        """The figures of a `Trainer.train_step` tensor (waits for that step to finish)."""
        return cls(*values.tolist())


class Trainer:
    """Owns the frozen segmentor, the head, the optimizer and the patch renderer of one run
    (of this process's share of it, given `dist`)."""

    def __init__(
        self,
        cfg: TrainConfig,
        segmentor: Segmentor | None = None,
        dist: Distributed | None = None,
    ):
        self.cfg = cfg
        try:  # before training, not after it
            check_tta(cfg.calibration.tta)
        except SleegError as err:
            raise SleegError(f"calibration.tta: {err}") from None
        self.out = Path(cfg.out)
        self.dist = dist
        self.rank, self.world_size = (dist.rank, dist.world_size) if dist else (0, 1)
        self.main = dist is None or dist.is_main  # writes the run folder
        # appended to the dropout and patch seeds: rank 0 draws what a single process would
        self.rank_key = (self.rank,) if self.rank else ()
        self.effective_batch = cfg.batch_size * self.world_size  # crops per optimizer step
        self.device = dist.device if dist else resolve_device(cfg.device)
        if segmentor is None:
            if not cfg.segmentor.weights:
                raise SleegError("segmentor.weights is required (a local checkpoint file)")
            segmentor = build_segmentor(
                cfg.segmentor.name, cfg.segmentor.weights, **cfg.segmentor.options
            )
        self.segmentor = segmentor.to(self.device)
        if cfg.segmentor.compile_mode:
            segmentor.compile_networks(cfg.segmentor.compile_mode)
        info = segmentor.info
        self.head_config = HeadConfig(
            info.feature_channels,
            cfg.head.width,
            cfg.head.depth,
            cfg.head.dropout,
            tuple(tuple(b) for b in cfg.head.branches),
        )
        torch.manual_seed(seeded(cfg.seed, 0))  # the head's initial weights
        self.head = OoDHead.from_config(self.head_config).to(self.device)
        self.optimizer = torch.optim.SGD(
            self.head.parameters(),
            lr=cfg.optim.lr,
            momentum=cfg.optim.momentum,
            weight_decay=cfg.optim.weight_decay,
            # fused on a GPU: the AMP loss scaler then skips steps with inf/NaN gradients on the
            # device instead of reading a flag back every step (which would stall the queue)
            fused=True if self.device.type == "cuda" else None,
        )
        self.renderer = PatchRenderer(cfg.patches)
        self.amp = cfg.amp and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.step = 0
        # wall seconds per phase of train_step, summed over steps; None: not measured (the
        # measurement synchronises the device at every phase boundary)
        self.phase_seconds: defaultdict[str, float] | None = None

    def time_phases(self) -> defaultdict[str, float]:
        """Start summing wall time per phase of `train_step` (benchmarks); returns the sums."""
        self.phase_seconds = defaultdict(float)
        return self.phase_seconds

    @contextmanager
    def _phase(self, name: str) -> Iterator[None]:
        """A named phase: a profiler label, and its wall time when `time_phases` is on."""
        with record_function(f"sleeg.{name}"):
            if self.phase_seconds is None:
                yield
                return
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            start = time.perf_counter()
            yield
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            self.phase_seconds[name] += time.perf_counter() - start

    # ------------------------------------------------------------------ one step
    def train_step(self, images: torch.Tensor) -> torch.Tensor:
        """One optimisation step. Returns its StepStats figures as one tensor on the device, read
        with `StepStats.of`; `fit` reads them a step late, so that on a GPU the next step is
        queued while this one runs (nothing in a step waits for the GPU)."""
        cfg, step = self.cfg, self.step
        torch.manual_seed(seeded(cfg.seed, step, 1, *self.rank_key))  # dropout of this step
        gen = torch.Generator()  # patch geometry drawn on the CPU: nothing waits for a GPU
        gen.manual_seed(seeded(cfg.seed, step, 2, *self.rank_key))
        images = images.to(self.device, non_blocking=True)
        road = None
        if cfg.patches.road_fraction > 0:
            with self._phase("road"):  # where the frozen segmentor sees road in the clean crops
                road = self.segmentor(images).train_ids() == ROAD_TRAIN_ID
        with self._phase("patches"):
            patched = self.renderer(images, gen, road)
        with self._phase("segmentor"):
            out = self.segmentor(patched.images)
        self.head.train()
        with self._phase("head_forward"):
            with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.amp):
                h_small = self.head(out.features, per_branch=True)  # N×B×2×h×w, N branches
            branches = h_small.shape[0]
            h_each = upsample_to_input(  # (N·B)×2×H×W: each branch gets its own loss
                h_small.flatten(0, 1).float(),
                patched.images.shape[-2:],
                self.segmentor.info.feature_stride,
            )
        logits = None  # full-resolution logits only when refinement or TORE read them
        if cfg.refine.enabled or cfg.loss.beta > 0:
            logits = out.logits.float()
        with self._phase("refinement"):
            if cfg.refine.enabled:
                h = h_each.unflatten(0, (branches, -1)).mean(0)  # the head's output
                scores = refinement_scores(
                    h, logits, step, cfg.refine.warmup_iters, cfg.lam, cfg.refine.mode
                )
                labels = refine_labels(scores, patched.pasted, cfg.refine.n_candidates)
            else:
                labels = patched.pasted.long()
        with self._phase("losses"):  # mean over branches, × N below: each learns on its own

            def each(t: torch.Tensor) -> torch.Tensor:
                """`t` once per branch along the batch (a view, not a copy, for one branch)."""
                return t.expand(branches, *t.shape).flatten(0, 1)

            loss = total_loss(
                h_each,
                None if logits is None else each(logits),
                each(labels),
                cfg.loss.beta,
                cfg.loss.gamma,
                cfg.loss.dynamic_margin,
                cfg.loss.tae_weight,
            )
        for group in self.optimizer.param_groups:
            group["lr"] = poly_lr(cfg.optim, step, cfg.iterations)
        with self._phase("backward_and_update"):
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss.total * branches).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        self.step += 1
        n = labels.numel()
        return torch.stack(  # the StepStats fields in order; TORE is NaN when β = 0
            [
                loss.total.detach().float(),
                loss.tae.detach().float(),
                loss.tore.detach().float(),
                (labels == 1).sum() / n,
                (labels == 255).sum() / n,
            ]
        )

    # ------------------------------------------------------------------ checkpoints
    def checkpoint_path(self, step: int) -> Path:
        return self.out / "checkpoints" / f"step_{step:08d}.pt"

    def save_checkpoint(self) -> Path | None:
        """Write a checkpoint of this step. Distributed: every rank calls it (their patch banks
        are gathered), rank 0 writes it and the others get None."""
        bank = self.renderer.bank.state_dict()
        banks = self.dist.all_gather(bank) if self.dist else None
        if not self.main:
            return None
        state = {
            "format": CHECKPOINT_FORMAT,
            "step": self.step,
            "config": to_dict(self.cfg),
            "head": unwrap(self.head).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "bank": bank,
        }
        if banks is not None:
            state["rank_banks"] = banks  # one per rank: rank r resumes with its own
        path = write_atomic(self.checkpoint_path(self.step), lambda f: torch.save(state, f))
        old = sorted(path.parent.glob("step_*.pt"))[: -self.cfg.keep_checkpoints]
        for stale in old:
            stale.unlink(missing_ok=True)
        return path

    def load_checkpoint(self, path: Path) -> None:
        try:
            state = torch.load(path, map_location=self.device, weights_only=True)
        except Exception as err:
            raise SleegError(f"cannot read checkpoint {path}: {err.__class__.__name__}") from err
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise SleegError(f"{path} is not a sleeg training checkpoint")
        self.head.load_state_dict(state["head"])  # before fit wraps it
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        banks = state.get("rank_banks", [state["bank"]])
        if len(banks) != self.world_size and self.main:
            tqdm.write(
                f"{path} was written by {len(banks)} process(es), this run has "
                f"{self.world_size}: the batches from here on differ from the original run's"
            )
        self.renderer.bank.load_state_dict(banks[self.rank % len(banks)], self.device)
        self.step = int(state["step"])

    def latest_checkpoint(self) -> Path | None:
        found = sorted((self.out / "checkpoints").glob("step_*.pt"))
        return found[-1] if found else None

    # ------------------------------------------------------------------ the run
    def fit(self, resume: bool = False, progress: bool = True) -> HeadFile | None:
        """Train to `iterations` and write head.pt; returns the head file (None on ranks > 0)."""
        cfg, dist = self.cfg, self.dist
        progress = progress and self.main
        collect = partial(collect_frames, cfg.data.sources, self.out / "frames", progress)
        frames, skipped = dist.in_turn(collect) if dist else collect()
        if resume and (latest := self.latest_checkpoint()) is not None:
            self.load_checkpoint(latest)
            if self.main:
                tqdm.write(f"resumed from {latest} at step {self.step}")
        if dist:
            dist.check_same("the frames or the step resumed from", [*map(str, frames)], self.step)
            self.head = dist.wrap(self.head)
            if self.main:
                tqdm.write(
                    f"distributed: world size {self.world_size} ({dist.backend}), batch "
                    f"{cfg.batch_size} per process, effective batch {self.effective_batch}"
                )
        if self.main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
        loader = self.loader(frames, cfg.iterations)
        log = MetricsLog(self.out, self.step) if self.main else None
        bar = tqdm(total=cfg.iterations, initial=self.step, desc="train", disable=not progress)
        pending: list[tuple[int, torch.Tensor, float, float]] = []  # queued steps, not yet read

        def record() -> None:
            """Read and log the queued step's figures (waits for that step)."""
            step, values, data_s, step_s = pending.pop()
            stats = StepStats.of(values)
            if log is not None:
                log.add(step, poly_lr(cfg.optim, step - 1, cfg.iterations), stats, data_s, step_s)
            if step % cfg.log_every == 0 or step == cfg.iterations:
                bar.set_postfix(
                    loss=f"{stats.loss:.3f}",
                    tae=f"{stats.tae:.3f}",
                    tore=f"{stats.tore:.2f}",
                    anom=f"{stats.anomaly_fraction:.3f}",
                )

        t_data = time.perf_counter()
        for images in loader:
            t_step = time.perf_counter()
            values = self.train_step(images)
            t_end = time.perf_counter()
            if dist:  # the figures of the whole batch
                values = dist.mean(values)
            if pending:  # the step before: on a GPU it ran while this one was queued
                record()
            pending.append((self.step, values, t_step - t_data, t_end - t_step))
            bar.update(1)
            if self.step % cfg.checkpoint_every == 0 or self.step == cfg.iterations:
                record()  # its row is in metrics.csv before its checkpoint exists
                self.save_checkpoint()
            t_data = time.perf_counter()
        if pending:
            record()
        bar.close()
        self.head = unwrap(self.head)
        if log is None:
            return None  # ranks > 0
        log.close()
        head_file = self.export(frames, skipped)
        head_file.save(self.out / "head.pt")
        return head_file

    def loader(self, frames: list[Path], until: int) -> DataLoader:
        """Batches of random crops for steps self.step … until−1, in worker processes."""
        cfg = self.cfg
        return DataLoader(
            CropDataset(frames, cfg.data.augment, cfg.seed, cfg.data.cache_mb),
            batch_sampler=StepSampler(
                len(frames),
                cfg.batch_size,
                cfg.seed,
                self.step,
                until,
                self.rank,
                self.world_size,
            ),
            num_workers=cfg.data.workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
        )

    # ------------------------------------------------------------------ export
    @torch.no_grad()
    def export(self, frames: list[Path], skipped: int) -> HeadFile:
        """Head file with the threshold calibrated on un-augmented training frames."""
        self.head.eval()
        model = AnomalySegmenter(self.segmentor, self.head, lam=self.cfg.lam)
        threshold, stats = calibrate(model, frames, self.cfg.calibration)
        return HeadFile(
            head_config=self.head_config,
            state_dict={k: v.detach().cpu() for k, v in self.head.state_dict().items()},
            segmentor=self.segmentor.info.name,
            segmentor_options=dict(self.cfg.segmentor.options),
            feature_channels=self.segmentor.info.feature_channels,
            lam=self.cfg.lam,
            threshold=threshold,
            threshold_rule=calibration_rule(self.cfg.calibration),
            score_stats=stats,
            train_config={
                **to_dict(self.cfg),
                "frames": len(frames),
                "frames_skipped": skipped,
                "world_size": self.world_size,
                "effective_batch": self.effective_batch,
            },
        )


class MetricsLog:
    """Scalars per step into metrics.csv (truncated to `start` on resume) and TensorBoard."""

    COLUMNS = (
        "step",
        "lr",
        "loss",
        "tae",
        "tore",
        "anomaly_fraction",
        "ignore_fraction",
        "data_s",
        "step_s",
    )

    def __init__(self, out: Path, start: int):
        path = out / "metrics.csv"
        rows = []
        if path.is_file() and start > 0:
            with path.open() as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= start]
        self.file = path.open("w", newline="")
        self.writer = csv.DictWriter(self.file, fieldnames=self.COLUMNS)
        self.writer.writeheader()
        self.writer.writerows(rows)
        self.tb = SummaryWriter(str(out / "tensorboard"), purge_step=start + 1)

    def add(self, step: int, lr: float, s: StepStats, data_s: float, step_s: float) -> None:
        row = {
            "step": step,
            "lr": lr,
            "loss": s.loss,
            "tae": s.tae,
            "tore": s.tore,
            "anomaly_fraction": s.anomaly_fraction,
            "ignore_fraction": s.ignore_fraction,
            "data_s": data_s,
            "step_s": step_s,
        }
        self.writer.writerow(row)
        self.file.flush()
        for key in self.COLUMNS[1:]:
            if not math.isnan(row[key]):  # TORE with β = 0 is not computed
                self.tb.add_scalar(f"train/{key}", row[key], step)

    def close(self) -> None:
        self.file.close()
        self.tb.close()


def seeded(seed: int, *key: int) -> int:
    """A 63-bit seed derived from (seed, *key), stable across processes (unlike hash())."""
    return int(np.random.default_rng([seed, *key]).integers(0, 2**63 - 1))


@torch.no_grad()
def calibrate(
    model: AnomalySegmenter, frames: list[Path], cal: CalibrationConfig
) -> tuple[float, dict[str, float]]:
    """(threshold, score statistics) of the 'sleeg' score on `cal.frames` evenly spaced normal
    `frames`, resized to `cal.size` and scored as `sleeg eval` and the node score them (with
    `cal.tta`): the threshold leaves `cal.fpr` of their pixels above it."""
    device = next(model.parameters()).device
    picks = np.linspace(0, len(frames) - 1, min(cal.frames, len(frames))).round().astype(int)
    tta, model.tta = model.tta, cal.tta
    try:
        scores = []
        for i in picks:
            image = cv2.resize(read_rgb(frames[i]), cal.size[::-1], interpolation=cv2.INTER_AREA)
            pred = model(to_batch(image, device), scores=("sleeg",))
            scores.append(pred.scores["sleeg"].flatten().cpu().numpy())
    finally:
        model.tta = tta
    q = np.quantile(np.concatenate(scores), [0.5, 0.9, 0.99, 0.999, 1 - cal.fpr])
    stats = {"normal_p50": q[0], "normal_p90": q[1], "normal_p99": q[2], "normal_p999": q[3]}
    return float(q[4]), {k: float(v) for k, v in stats.items()}


def calibration_rule(cal: CalibrationConfig) -> str:
    """How `calibrate` chose a threshold, in words (a head file's `threshold_rule`)."""
    return f"{cal.fpr:.2%} of normal training pixels above it (tta {cal.tta})"
